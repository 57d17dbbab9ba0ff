"""The benchmark report: one self-contained HTML page and a Markdown summary.

:func:`write_report` writes ``report.html`` (every figure embedded as a base64 PNG: the
page opens from disk with no server and no network), ``report.md`` (tables and numbers,
linking the same figures) and ``figures/*.png`` into ``directory``, atomically (built in
a temporary folder inside ``directory``, then moved into place).  The page skeleton and
its style sheet are the template ``templates/report.html`` (``string.Template``); each
report section is one function of :data:`SECTIONS`; the figures are drawn by
:mod:`pytest_crbench.reporting.figures`.

``results`` is a plain dict; every key is optional (a missing section says so):

``"title"``: str; ``"meta"``: ``{label: value}`` shown at the top (run date, versions …).

``"table1"``: list of rows ``{"detector", "dataset", "region", "precision", "recall",
"f1", "f2"}`` (fractions 0–1 or None; optional ``"tp"``, ``"fp"``, ``"fn"``); regions
as named by :func:`pytest_crbench.science.regions.region_name` (``"full"``, ``"k3"`` …), shown
in the order they first appear; optional ``"against"``: ``"reference"`` (default) or
``"truth"``.  → the paper's Table 1 (rows regions, recall and precision per detector),
one table per dataset, then one against the simulation truth where there are such rows.

``"audit"``: list of ``{"dataset", "region", "precision", "recall",
"recall_significant", "n_exposures"}`` — the reference masks against the truth per
region (:func:`pytest_crbench.science.truth.pooled_audit`).

``"photometry"``: ``{detector: {dataset: photometry_summary(...)}}``
(:func:`pytest_crbench.science.photometry_summary.photometry_summary`); when absent it is computed from
``"stars"`` (one entry per detector, dataset "all").

``"stars"``: ``{detector: photometry table}`` — a
:data:`pytest_crbench.science.photometry.PHOT_DTYPE` array or a list of its rows as dicts (all
exposures of all groups).  → Fig. 3: flux ratio against clean flux, per detector, with
the [0.97, 1.03] and [0.9, 1.1] bands.

``"density"``: ``{detector: density_relation(...)}``
(:func:`pytest_crbench.science.density.density_relation`).  → Fig. 6 with the fitted lines.
``"cr_fraction_per_second"``: float or None.  ``"exposure_limits"``: list of
``{"detector", "quantity", "level", "seconds"}`` (``seconds`` from
:func:`pytest_crbench.science.density.max_exposure_time`, None = no limit).

``"stability"``: ``{detector: group_stability(...)}``
(:func:`pytest_crbench.science.stability.group_stability`).  → Figs. 7 (F1, F2) and 8 (RMS)
against date, with the mean and mean ± 3σ lines; groups outside are named.

``"bootstrap"`` and ``"intervals"``: the results JSON sections of the same names
(:mod:`pytest_crbench.bench.intervals`) → the intervals in Table 1 and the photometry
table, and the Table-1 plot of recall and precision against k with bands.
``"comparison"``: ``{"baseline", "max_drop", "differences": [...]}`` as in the results
JSON, and ``"star_rows"``: the JSON ``stars`` rows → the comparison section (Δ per region
with paired intervals, McNemar table, candidate-vs-baseline flux-ratio scatter).

``"gallery"``: list of ``{"detector", "star_id", "exposure", "group", "x", "y",
"radius", "ratio_cleaned", "ratio_original", "area", "stamps"}`` where ``stamps`` is
:func:`pytest_crbench.science.gallery.gallery_stamps` output (five 2-D arrays); only ``detector`` and ``stamps`` are
required.  → the failure gallery: original, original − clean, clean, |clean − cleaned|,
cleaned.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import string
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.reporting.figures import (fig_density, fig_flux_ratio, fig_gallery_entry,
                                              fig_stability, png)
from pytest_crbench.reporting.formatting import num, pct

__all__ = ["SECTIONS", "write_report"]


def _region_label(region: str) -> str:
    if region == "full":
        return "full image"
    if region.startswith("k"):
        return f"&gt; {region[1:]}×RMS"
    return html.escape(region)


# --------------------------------------------------------------------------- sections

def _table1(rows: list[Mapping[str, Any]]):
    """{(dataset, against): (regions, detectors, {(region, detector): row})}."""
    out: dict[Any, Any] = {}
    for r in rows:
        ds = str(r.get("dataset", ""))
        regions, dets, cells = out.setdefault((ds, r.get("against", "reference")),
                                              ([], [], {}))
        reg, det = str(r["region"]), str(r["detector"])
        if reg not in regions:
            regions.append(reg)
        if det not in dets:
            dets.append(det)
        cells[(reg, det)] = r
    return out


def _photometry(results) -> dict[str, dict[str, Any]]:
    if results.get("photometry"):
        return results["photometry"]
    from pytest_crbench.science.photometry_summary import photometry_summary

    return {det: {"all": photometry_summary(s)} for det, s in (results.get("stars") or {}).items()}


_PHOT_COLS = (("contaminated", "contaminated / all"),
              ("anomalous", "anomalous / contaminated"),
              ("inside_97_103", "ratio in [0.97, 1.03] / contaminated"),
              ("outside_90_110", "ratio outside [0.9, 1.1] / contaminated"),
              ("anomalous_of_all", "anomalous / all"))


def _phot_rows(phot):
    for det, per_ds in phot.items():
        for ds, summ in per_ds.items():
            blocks = [("all sizes", summ["overall"])] + [
                (f"{lab} px", b) for lab, b in summ.get("by_size", {}).items()]
            for lab, b in blocks:
                yield det, ds, lab, b


class _Page:
    def __init__(self, title: str):
        self.title = title
        self.html: list[str] = []
        self.md: list[str] = []
        self.toc: list[tuple[str, str]] = []
        self.figures: dict[str, bytes] = {}

    def section(self, anchor: str, title: str):
        self.toc.append((anchor, title))
        self.html.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')
        self.md.append(f"\n## {title}\n")

    def para(self, text: str, md: str | None = None):
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append((md if md is not None else text) + "\n")

    def figure(self, name: str, fig, caption: str):
        if fig is None:
            self.para(f"No data for this figure ({caption}).")
            return
        data = png(fig)
        self.figures[name] = data
        b64 = base64.b64encode(data).decode("ascii")
        self.html.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.md.append(f"![{caption}](figures/{name})\n")

    def table(self, header: list[str], rows: list[list[str]], *, header_html=None,
              caption: str | None = None):
        h = ["<table>"]
        if caption:
            h.append(f"<caption>{html.escape(caption)}</caption>")
        h.append(header_html or "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header)
                 + "</tr>")
        for row in rows:
            h.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
        h.append("</table>")
        self.html.append("\n".join(h))
        if caption:
            self.md.append(f"**{caption}**\n")
        md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            md.append("| " + " | ".join(_strip(c) for c in row) + " |")
        self.md.append("\n".join(md) + "\n")


def _strip(cell: str) -> str:
    return html.unescape(str(cell).replace("<b>", "**").replace("</b>", "**"))\
        .replace("|", "\\|")


def _section_sweeps(page: _Page, results: Mapping[str, Any]) -> None:
    """The threshold-sweep section: AUC / AP / TPR at the fixed FPRs, ROC and PR plots."""
    records = results.get("sweeps") or []
    from pytest_crbench.reporting.sweep_figures import fig_pr, fig_roc
    from pytest_crbench.science.sweeps import FIXED_FPRS, ThresholdSweep

    page.section("sweeps", "Threshold sweeps (ROC and precision–recall)")
    if not records:
        page.para("No detector of this run returns probabilities: no threshold sweep.")
        return
    f1, f2 = (f"{f:g}" for f in FIXED_FPRS)
    by_ds: dict[str, dict[str, tuple]] = {}
    rows = []
    for rec in records:
        sweep = ThresholdSweep.from_record(rec)
        by_ds.setdefault(rec["dataset"], {})[rec["detector"]] = (sweep, rec.get("threshold"))
        for region, s in rec["summary"].items():
            at = s["at_fpr"]
            rows.append([html.escape(rec["detector"]), html.escape(rec["dataset"]),
                         _region_label(region), num(s["auc"], "{:.4f}"),
                         num(s["average_precision"], "{:.4f}"),
                         pct(at[f1]["tpr"]), pct(at[f1]["precision"]),
                         pct(at[f2]["tpr"]), pct(at[f2]["precision"])])
    page.table(["detector", "dataset", "region", "AUC", "AP",
                f"TPR % at FPR {100 * FIXED_FPRS[0]:g} %", "precision %",
                f"TPR % at FPR {100 * FIXED_FPRS[1]:g} %", "precision %"], rows,
               caption="Threshold sweeps of the probability detectors (— = undefined)")
    page.para("Every threshold of a fixed grid of 1,641 values is scored at once from "
              "per-region histograms of the probabilities of reference cosmic-ray pixels "
              "and of the other pixels. TPR at a fixed FPR interpolates TP and FP linearly "
              "between the two grid thresholds that bracket it (the deepCR paper quotes "
              "0.05 % and 0.5 %); dots mark each detector's own threshold.")
    for i, (ds, sweeps) in enumerate(by_ds.items()):
        page.figure(f"sweep_roc_{i:02d}.png", fig_roc(sweeps, ds),
                    f"ROC curves per region on {ds} (log false-positive rate; dashed: "
                    "FPR 0.05 % and 0.5 %)")
        page.figure(f"sweep_pr_{i:02d}.png", fig_pr(sweeps, ds),
                    f"Precision–recall curves per region on {ds}")



def _intervals(results: Mapping[str, Any]) -> dict:
    """(detector, dataset, kind, part, metric) → interval row of the results JSON."""
    return {(r["detector"], r["dataset"], r["kind"], r["part"], r["metric"]): r
            for r in results.get("intervals") or ()}


def _with_interval(ivs: dict, value, *key) -> str:
    """``value`` in % with its bootstrap interval (``[n/a]`` with the reason on hover)."""
    iv = ivs.get(key)
    if value is None or iv is None:
        return pct(value)
    if not iv.get("interval"):
        return f'{pct(value)} <span title="{html.escape(iv.get("reason") or "")}">[n/a]</span>'
    lo, hi = iv["interval"]
    return f"{pct(value)} [{pct(lo)}, {pct(hi)}]"


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "dataset"


def _section_table1(page: _Page, results: Mapping[str, Any]) -> None:
    page.section("table1", "Pixel scores per star region (Table 1)")
    t1 = _table1(results.get("table1") or [])
    if not t1:
        page.para("No pixel scores in these results.")
    ivs = _intervals(results)
    for (ds, against), (regions, dets, cells) in t1.items():
        head = ("<tr><th rowspan=2>region</th>" + "".join(
            f"<th colspan=2>{html.escape(d)}</th>" for d in dets) + "</tr><tr>" +
            "<th>recall %</th><th>precision %</th>" * len(dets) + "</tr>")
        header = ["region"] + [f"{d} {m} %" for d in dets for m in ("recall", "precision")]
        rows = []
        for reg in regions:
            row = [_region_label(reg)]
            for d in dets:
                c = cells.get((reg, d), {})
                row += [_with_interval(ivs, c.get(m), d, ds, "pixels", reg, m)
                        if against == "reference" else pct(c.get(m))
                        for m in ("recall", "precision")]
            rows.append(row)
        what = ("against the reference" if against == "reference" else
                "against the simulation truth (CRTRUTH)")
        page.table(header, rows, header_html=head,
                   caption=(f"Dataset {ds}: " if ds else "")
                   + f"recall and precision (%) by region, {what}")
    page.para("Regions: the whole image, and the connected star regions above k × the "
              "background RMS of the clean reference (larger k = closer to star centres). "
              "The reference rule is named at the top of the page; against the truth a "
              "pixel is a cosmic ray where its injected charge exceeds the truth "
              "threshold, and fainter injected charge is left out of both classes.")
    boot = results.get("bootstrap")
    if ivs and boot:
        from pytest_crbench.reporting.statistics_figures import fig_table1_bands

        page.para(f"Brackets: {100 * boot['confidence']:g} % percentile interval of a "
                  f"two-stage bootstrap ({boot['unit']}; {boot['replicates']} replicates, "
                  f"seed {boot['seed']}); [n/a]: too few positives or groups for an "
                  "interval (hover for the reason).")
        for ds in dict.fromkeys(ds for ds, _ in t1):
            page.figure(f"table1_bands_{_slug(ds)}.png", fig_table1_bands(
                list(ivs.values()), ds), f"Table 1 on {ds}: recall and precision against k "
                "with their bootstrap intervals (bands; full image: squares with error bars)")
    audit = results.get("audit") or []
    if audit:
        rows = [[html.escape(str(a["dataset"])), _region_label(str(a["region"])),
                 pct(a.get("precision")), pct(a.get("recall")),
                 pct(a.get("recall_significant")), str(a.get("n_exposures", ""))]
                for a in audit]
        page.table(["dataset", "region", "precision %", "recall %",
                    "recall of significant charge %", "exposures"], rows,
                   caption="Reference audit: the reference masks against the simulation "
                           "truth (CRTRUTH), per region")


def _section_photometry(page: _Page, results: Mapping[str, Any]) -> None:
    page.section("photometry", "Photometry (Fig. 3)")
    phot = _photometry(results)
    rows = []
    ivs = _intervals(results)
    for det, ds, lab, b in _phot_rows(phot):
        part = "all" if lab == "all sizes" else lab.removesuffix(" px")
        rows.append([html.escape(det), html.escape(ds), html.escape(lab), str(b["n"]),
                     str(b["n_contaminated"])] + [
            _with_interval(ivs, b.get(k), det, ds, "photometry", part, k)
            for k, _ in _PHOT_COLS])
    if rows:
        page.table(["detector", "dataset", "star size", "stars", "contaminated"] +
                   [f"{t} %" for _, t in _PHOT_COLS], rows,
                   caption="Photometric figures (%; — = undefined: no star in the population)")
        page.para("Contaminated: |F_original − F_clean| > 3σ_F; anomalous: |F_cleaned − "
                  "F_clean| > 3σ_F. As in the paper, the ratio fractions are over the "
                  "contaminated stars.")
    else:
        page.para("No photometry in these results.")
    page.figure("fig3_flux_ratio.png", fig_flux_ratio(results.get("stars") or {}),
                "Fig. 3 — flux ratio against clean flux per detector; green band "
                "[0.97, 1.03], orange band [0.9, 1.1]; triangles: ratios beyond the axis")


def _section_comparison(page: _Page, results: Mapping[str, Any]) -> None:
    """Δ per region with paired intervals, McNemar rows and the flux-ratio scatter (only
    with a baseline)."""
    comparison = results.get("comparison") or {}
    if not comparison.get("differences"):
        return
    from pytest_crbench.reporting.statistics_figures import (fig_comparison_deltas,
                                                             fig_ratio_scatter)

    diffs = comparison["differences"]
    star_rows = results.get("star_rows") or []
    max_drop = float(comparison.get("max_drop") or 0.0)
    page.section("comparison", f"Comparison with the baseline {comparison.get('baseline')}")
    page.para("Candidate − baseline on the same exposures, with a paired bootstrap "
              "interval (the same resampled groups and exposures for both detectors); "
              "better / worse where the interval excludes 0.  A score fails the "
              f"non-inferiority rule where its whole interval lies below −{max_drop:g}.")

    def raw(d) -> bool:  # the stability of flux ratios: an RMS, not a fraction
        return d["kind"] == "stability" and d["metric"] == "rms"

    def value(d, key):
        return num(d[key], "{:.4f}") if raw(d) else pct(d[key])

    def delta(d):
        v, iv = d["delta"]["value"], d["delta"]["interval"]
        if v is None:
            return "—"
        scale, fmt = (1.0, "{:+.4f}") if raw(d) else (100.0, "{:+.1f}")
        text = fmt.format(scale * v)
        return text + (f" [{fmt.format(scale * iv[0])}, {fmt.format(scale * iv[1])}]"
                       if iv else "")

    def verdict(d):
        v = d["verdict"]
        return f'<b class="warn">{v}</b>' if v == "worse" else html.escape(v)

    rows = [[html.escape(d["candidate"]), html.escape(d["dataset"]), html.escape(d["kind"]),
             html.escape(d["part"]), html.escape(d["metric"]), value(d, "candidate_value"),
             value(d, "baseline_value"), delta(d), verdict(d)]
            for d in diffs if d["kind"] in ("pixels", "photometry", "stability")]
    page.table(["candidate", "dataset", "kind", "region / stars", "metric", "candidate %",
                "baseline %", "Δ (pp) [interval]", "verdict"], rows,
               caption="Paired differences (photometric fractions: lower anomalous and "
                       "outside fractions are better; the stability RMS of flux ratios "
                       "is given as it is, not in %)")
    mc = [[html.escape(d["candidate"]), html.escape(d["dataset"]), html.escape(d["part"]),
           str(d["pairs"]), f"{d['candidate_only']} / {d['baseline_only']}",
           num(d["p_value"], "{:.2g}"), verdict(d)]
          for d in diffs if d.get("p_value") is not None]
    if mc:
        page.table(["candidate", "dataset", "star size", "contaminated stars matched",
                    "anomalous only for candidate / only for baseline", "McNemar p",
                    "verdict"], mc, caption="Anomalous status per matched star (exact "
                                            "McNemar test on the discordant pairs)")
    page.figure("comparison_deltas.png", fig_comparison_deltas(diffs, max_drop),
                "Candidate − baseline per region with paired bootstrap intervals; dashed: "
                "the non-inferiority tolerance")
    pairs = list(dict.fromkeys((d["candidate"], d["baseline"], d["dataset"]) for d in diffs))
    page.figure("comparison_flux_ratio.png", fig_ratio_scatter(star_rows, pairs),
                "Flux ratio F_cleaned/F_clean of each matched contaminated star: candidate "
                "against baseline (diagonal: the same result; green: [0.97, 1.03])")


def _section_density(page: _Page, results: Mapping[str, Any]) -> None:
    page.section("density", "Cosmic-ray density (Fig. 6)")
    dens = results.get("density") or {}
    rows = []
    for det, rel in dens.items():
        for q, e in rel.items():
            fit = e.get("fit")
            rows.append([html.escape(det), html.escape(q), str(len(e.get("x", []))),
                         num(fit.slope if fit else None), num(fit.intercept if fit else None),
                         num(fit.r if fit else None, "{:.3f}"),
                         num(fit.p if fit else None, "{:.2g}"),
                         html.escape(e.get("reason") or "")])
    if rows:
        page.table(["detector", "y quantity (fraction)", "exposures", "slope",
                    "intercept", "Pearson r", "p", "note"], rows,
                   caption="Least-squares fits of y against the CR pixel fraction")
    rate = results.get("cr_fraction_per_second")
    if rate is not None:
        page.para(f"Cosmic-ray pixel fraction per second of exposure (from the data): "
                  f"{rate:.3g} /s ({100 * rate * 1000:.2f} % per 1000 s).")
    limits = results.get("exposure_limits") or []
    if limits:
        page.table(["detector", "quantity", "level %", "longest exposure (s)"],
                   [[html.escape(str(l["detector"])), html.escape(str(l["quantity"])),
                     pct(l["level"]),
                     "no limit" if l.get("seconds") is None else f"{l['seconds']:.0f}"]
                    for l in limits],
                   caption="Longest exposure keeping the fitted fraction below the level")
    page.figure("fig6_density.png", fig_density(dens),
                "Fig. 6 — (a) contaminated stars and (b) anomalous results per star size "
                "against the cosmic-ray pixel fraction, with least-squares lines")


def _stability_rows(stab: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for det, st in stab.items():
        for key, label in (("f1", "F1 %"), ("f2", "F2 %"), ("rms", "trimmed RMS")):
            b = st.get(key) or {}
            conv = pct if key != "rms" else (lambda v: num(v, "{:.4f}"))
            rows.append([html.escape(det), label, str(b.get("n", 0)), conv(b.get("mean")),
                         conv(b.get("std")), f"{conv(b.get('lower'))} … {conv(b.get('upper'))}",
                         ("<b>" + html.escape(", ".join(b["outliers"])) + "</b>")
                         if b.get("outliers") else ("none" if b.get("std") is not None
                                                    else html.escape(b.get("reason") or ""))])
    return rows


def _section_stability(page: _Page, results: Mapping[str, Any]) -> None:
    page.section("stability", "Stability over time (Figs. 7 and 8)")
    stab = results.get("stability") or {}
    rows = _stability_rows(stab)
    if rows:
        page.table(["detector", "quantity", "groups", "mean", "σ", "mean ± 3σ",
                    "groups outside (vs. the other groups' interval)"], rows,
                   caption="Per-group scores over observation dates")
        grow = []
        for det, st in stab.items():
            for g in st.get("groups", []):
                grow.append([html.escape(det), html.escape(g["group"]), html.escape(g["date"]),
                             pct(g["f1"]), pct(g["f2"]), num(g["rms"], "{:.4f}"),
                             str(g["n_ratios"])])
        page.table(["detector", "group", "date", "F1 %", "F2 %", "trimmed RMS", "stars"],
                   grow, caption="Per group")
    else:
        page.para("No stability results.")
    page.figure("fig7_f1_f2.png", fig_stability(stab, "f"),
                "Fig. 7 — F1 and F2 of cosmic rays on stars per group against date; solid: "
                "mean, dashed: mean ± 3σ")
    page.figure("fig8_rms.png", fig_stability(stab, "rms"),
                "Fig. 8 — RMS of the flux ratios (top and bottom 5 % trimmed) per group "
                "against date; solid: mean, dashed: mean ± 3σ")


def _gallery_caption(entry: Mapping[str, Any]) -> str:
    bits = [f"{entry.get('detector', '?')}", f"star {entry.get('star_id', '?')}"]
    if entry.get("group"):
        bits.append(f"group {entry['group']}")
    if entry.get("exposure"):
        bits.append(f"exposure {entry['exposure']}")
    if entry.get("area") is not None:
        bits.append(f"area {entry['area']} px")
    if entry.get("ratio_cleaned") is not None:
        bits.append(f"F_cleaned/F_clean = {entry['ratio_cleaned']:.3f}")
    if entry.get("ratio_original") is not None:
        bits.append(f"F_original/F_clean = {entry['ratio_original']:.3f}")
    return " · ".join(bits)


def _section_gallery(page: _Page, results: Mapping[str, Any]) -> None:
    page.section("gallery", "Failure gallery")
    gallery = results.get("gallery") or []
    if not gallery:
        page.para("No anomalous star to show.")
    for i, entry in enumerate(gallery):
        page.figure(f"gallery_{i:02d}.png", fig_gallery_entry(entry), _gallery_caption(entry))


#: the report's sections, in page order
SECTIONS = (_section_table1, _section_sweeps, _section_photometry, _section_comparison,
            _section_density,
            _section_stability, _section_gallery)


def _template() -> string.Template:
    text = resources.files("pytest_crbench.reporting").joinpath(
        "templates", "report.html").read_text(encoding="utf-8")
    return string.Template(text)


def _build(results: Mapping[str, Any]) -> tuple[str, str, dict[str, bytes]]:
    """``(html, markdown, figures)`` of the report."""
    page = _Page(str(results.get("title") or "pytest-crbench report"))
    for section in SECTIONS:
        section(page, results)
    meta = results.get("meta") or {}
    head_meta = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in meta.items())
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in page.toc)
    text = _template().substitute(
        title=html.escape(page.title),
        meta=f'<table class="meta">{head_meta}</table>' if head_meta else "",
        toc=toc, body="\n".join(page.html))
    md_meta = [f"- **{k}**: {v}" for k, v in meta.items()]
    md = [f"# {page.title}\n"] + ([("\n".join(md_meta) + "\n")] if md_meta else []) + page.md
    return text, "\n".join(md), page.figures


def write_report(directory: str | os.PathLike, results: Mapping[str, Any], *,
                 html_name: str = "report.html", md_name: str = "report.md",
                 ) -> tuple[Path, Path]:
    """Write the HTML page, the Markdown summary and ``figures/`` into ``directory``.

    Returns ``(html_path, md_path)``.  Atomic: everything is built in a temporary folder
    inside ``directory`` and moved into place only when complete (a failure leaves the
    previous report, if any, untouched).  Plots use matplotlib's Agg canvas directly
    (``Figure`` + ``FigureCanvasAgg``): no global backend switch, no pyplot state.
    """
    if not isinstance(results, Mapping):
        raise CRBenchDataError(f"write_report: results must be a dict, got {type(results).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=directory))
    try:
        text, md, figures = _build(results)
        figdir = tmp / "figures"
        figdir.mkdir()
        for name, data in figures.items():
            (figdir / name).write_bytes(data)
        (tmp / html_name).write_text(text, encoding="utf-8")
        (tmp / md_name).write_text(md, encoding="utf-8")
        dest_fig = directory / "figures"
        if dest_fig.exists():
            old = directory / f".figures-old-{os.getpid()}"
            os.replace(dest_fig, old)
            os.replace(figdir, dest_fig)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(figdir, dest_fig)
        os.replace(tmp / md_name, directory / md_name)
        os.replace(tmp / html_name, directory / html_name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory / html_name, directory / md_name
