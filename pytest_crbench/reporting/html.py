"""The benchmark report: one self-contained HTML page and a Markdown summary.

:func:`write_report` writes ``report.html`` (every figure embedded as a base64 PNG: the
page opens from disk with no server and no network), ``report.md`` (tables and numbers,
linking the same figures) and ``figures/*.png`` into ``directory``, atomically (built in
a temporary folder inside ``directory``, then moved into place).

``results`` is a plain dict; every key is optional (a missing section says so):

``"title"``: str; ``"meta"``: ``{label: value}`` shown at the top (run date, versions …).

``"table1"``: list of rows ``{"detector", "dataset", "region", "precision", "recall",
"f1", "f2"}`` (fractions 0–1 or None; optional ``"tp"``, ``"fp"``, ``"fn"``); regions
as named by :func:`pytest_crbench.science.regions.region_name` (``"full"``, ``"k3"`` …), shown
in the order they first appear.  → the paper's Table 1 (rows regions, recall and
precision per detector), one table per dataset.

``"photometry"``: ``{detector: {dataset: photometry_summary(...)}}``
(:func:`pytest_crbench.science.photometry.photometry_summary`); when absent it is computed from
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

``"gallery"``: list of ``{"detector", "star_id", "exposure", "group", "x", "y",
"radius", "ratio_cleaned", "ratio_original", "area", "stamps"}`` where ``stamps`` is
:func:`gallery_stamps` output (five 2-D arrays); only ``detector`` and ``stamps`` are
required.  → the failure gallery: original, original − clean, clean, |clean − cleaned|,
cleaned.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.gallery import STAMP_KEYS, gallery_stamps  # noqa: F401  (re-exported)

#: Titles of the five gallery stamps, in the order of STAMP_KEYS.
STAMP_TITLES = ("original", "original − clean\n(true CRs)", "clean reference",
                "|clean − cleaned|\n(detector errors)", "detector-cleaned")


# --------------------------------------------------------------------------- formatting

def _pct(v, digits=1) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) \
        else f"{100 * v:.{digits}f}"


def _num(v, fmt="{:.3g}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return fmt.format(v)


def _region_label(region: str) -> str:
    if region == "full":
        return "full image"
    if region.startswith("k"):
        return f"&gt; {region[1:]}×RMS"
    return html.escape(region)


def _region_label_md(region: str) -> str:
    return "full image" if region == "full" else (
        f"> {region[1:]}×RMS" if region.startswith("k") else region)


def _parse_date(s: str):
    try:
        return datetime.fromisoformat(str(s).replace("Z", ""))
    except ValueError:
        return None


def _columns(stars):
    from pytest_crbench.science.photometry import _columns as cols

    return cols(stars)


def _fit_label(fit) -> str:
    if fit is None:
        return "no fit"
    r = "r undefined" if fit.r is None else f"r = {fit.r:.2f}"
    p = "" if fit.p is None else f", p = {fit.p:.1g}"
    return f"{r}{p}, n = {fit.n}"


# --------------------------------------------------------------------------- figures

def _new_figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    ncols = min(ncols, max(n, 1))
    return int(math.ceil(n / ncols)), ncols


def fig_flux_ratio(stars_by_detector: Mapping[str, Any]):
    """Fig. 3: F/F_clean against F_clean (log), per detector, with the accuracy bands."""
    dets = [d for d, s in stars_by_detector.items() if len(_columns(s).get("flux_clean", []))]
    if not dets:
        return None
    nr, nc = _grid(len(dets), 2)
    fig = _new_figure(6.2 * nc, 4.4 * nr)
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False)).ravel()
    for ax, det in zip(axes, dets):
        col = _columns(stars_by_detector[det])
        f = np.asarray(col["flux_clean"], float)
        rc = np.asarray(col["ratio_cleaned"], float)
        ro = np.asarray(col["ratio_original"], float)
        cont = np.asarray(col["contaminated"], bool)
        ok = (f > 0) & np.isfinite(rc)
        lo, hi = 0.8, 1.2
        vals = np.concatenate([rc[ok], ro[ok & np.isfinite(ro)]])
        if vals.size:
            lo = max(min(lo, np.nanpercentile(vals, 1) - 0.02), 0.0)
            hi = min(max(hi, np.nanpercentile(vals, 99) + 0.02), 3.0)
        ax.axhspan(0.9, 1.1, color="#f3d9a4", alpha=0.6, lw=0, label="[0.9, 1.1]")
        ax.axhspan(0.97, 1.03, color="#9fd49f", alpha=0.8, lw=0, label="[0.97, 1.03]")
        ax.axhline(1.0, color="k", lw=0.6)

        def scatter(r, sel, **kw):
            rr = np.clip(r[sel], lo, hi)
            clipped = (r[sel] < lo) | (r[sel] > hi)
            ax.scatter(f[sel][~clipped], rr[~clipped], **kw)
            if clipped.any():
                kw2 = dict(kw, marker="^", label=None)
                ax.scatter(f[sel][clipped], rr[clipped], **kw2)

        sel_o = ok & np.isfinite(ro) & cont
        scatter(ro, sel_o, s=10, c="0.45", marker="x", lw=0.8,
                label=f"original / clean (contaminated, {int(sel_o.sum())})")
        scatter(rc, ok & ~cont, s=9, c="#4a78c2", alpha=0.6,
                label=f"cleaned / clean, not contaminated ({int((ok & ~cont).sum())})")
        scatter(rc, ok & cont, s=14, c="#d62728",
                label=f"cleaned / clean, contaminated ({int((ok & cont).sum())})")
        ax.set_xscale("log")
        ax.set_ylim(lo, hi)
        ax.set_xlabel("clean-reference aperture flux F_clean (e⁻)")
        ax.set_ylabel("flux ratio F / F_clean")
        ax.set_title(f"{det}: {int(ok.sum())} star measurements")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    for ax in axes[len(dets):]:
        ax.set_visible(False)
    return fig


_BIN_COLOURS = ("black", "#d62728", "#1f77b4", "#2ca02c", "#9467bd")


def fig_density(density_by_detector: Mapping[str, Mapping[str, Any]]):
    """Fig. 6: contaminated and anomalous fractions against the CR pixel fraction."""
    dets = list(density_by_detector)
    if not dets:
        return None
    fig = _new_figure(12.5, 4.4 * len(dets))
    axes = fig.subplots(len(dets), 2, squeeze=False)
    for row, det in zip(axes, dets):
        rel = density_by_detector[det]
        panels = [("contaminated", ["contaminated"], "contaminated stars (%)"),
                  ("anomalous", [q for q in rel if q.startswith("anomalous_")],
                   "stars with an anomalous result (%)")]
        for ax, (name, quants, ylabel) in zip(row, panels):
            any_pts = False
            for i, q in enumerate(quants):
                e = rel.get(q)
                if not e or not e["x"]:
                    continue
                any_pts = True
                colour = _BIN_COLOURS[i % len(_BIN_COLOURS)] if name == "anomalous" \
                    else "#d62728"
                x = 100 * np.asarray(e["x"], float)
                y = 100 * np.asarray(e["y"], float)
                lab = "stars" if q == "contaminated" else \
                    f"{q.removeprefix('anomalous_')} px stars"
                ax.scatter(x, y, s=16, color=colour, alpha=0.8)
                fit = e.get("fit")
                if fit is not None:
                    xs = np.linspace(0, max(x.max(), 1e-9) * 1.05, 50)
                    ax.plot(xs, 100 * fit.predict(xs / 100), color=colour,
                            label=f"{lab}: {_fit_label(fit)}")
                else:
                    ax.plot([], [], color=colour, label=f"{lab}: {e.get('reason')}")
            ax.set_xlabel("cosmic-ray pixels in the image (%)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{det}: {'(a) contamination' if name == 'contaminated' else '(b) anomalous results per size'}")
            ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
            if any_pts:
                ax.legend(fontsize=8, loc="best")
            else:
                ax.text(0.5, 0.5, "no exposure with stars", transform=ax.transAxes,
                        ha="center")
    return fig


def _band_lines(ax, band, colour, label):
    if band.get("mean") is not None:
        ax.axhline(band["mean"], color=colour, lw=1.2, label=f"{label} mean")
    if band.get("lower") is not None:
        ax.axhline(band["lower"], color=colour, lw=0.9, ls="--", label=f"{label} mean ± 3σ")
        ax.axhline(band["upper"], color=colour, lw=0.9, ls="--")


def _dates(groups):
    d = [_parse_date(g["date"]) for g in groups]
    if all(v is not None for v in d) and d:
        return d, True
    return list(range(len(groups))), False


def fig_stability(stability_by_detector: Mapping[str, Mapping[str, Any]], what: str):
    """Fig. 7 (``what="f"``: F1 and F2) or Fig. 8 (``what="rms"``) against date."""
    import matplotlib.dates  # noqa: F401  (registers the datetime converter)

    dets = [d for d, s in stability_by_detector.items() if s.get("groups")]
    if not dets:
        return None
    nr, nc = _grid(len(dets), 2)
    fig = _new_figure(6.2 * nc, 4.0 * nr)
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False)).ravel()
    for ax, det in zip(axes, dets):
        st = stability_by_detector[det]
        groups = st["groups"]
        xs, is_date = _dates(groups)
        keys = (("f1", "F1", "#1f77b4"), ("f2", "F2", "#d62728")) if what == "f" else \
            (("rms", "trimmed RMS of F_cleaned/F_clean", "#1f77b4"),)
        for key, label, colour in keys:
            vals = [g[key] for g in groups]
            pts = [(x, 100 * v if what == "f" else v) for x, v in zip(xs, vals)
                   if v is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour,
                        label=label)
            band = dict(st.get(key) or {})
            if what == "f":
                band = {k: (100 * v if isinstance(v, (int, float)) and k in
                            ("mean", "lower", "upper") else v) for k, v in band.items()}
            _band_lines(ax, band, colour, label)
            for name in band.get("outliers", []):
                for x, g in zip(xs, groups):
                    if g["group"] == name and g[key] is not None:
                        v = 100 * g[key] if what == "f" else g[key]
                        ax.annotate(name, (x, v), textcoords="offset points",
                                    xytext=(4, 4), fontsize=8, color=colour)
        if not is_date:
            ax.set_xticks(xs, [g["group"] for g in groups], rotation=45, fontsize=8)
        ax.set_xlabel("observation date" if is_date else "group")
        ax.set_ylabel("score on stars (%)" if what == "f" else "RMS of flux ratio − 1")
        ax.set_title(f"{det}: {'F1 / F2 of cosmic rays on stars' if what == 'f' else 'photometric accuracy'}")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
        if is_date:
            ax.tick_params(axis="x", labelrotation=30)
    for ax in axes[len(dets):]:
        ax.set_visible(False)
    return fig


def fig_gallery_entry(entry: Mapping[str, Any]):
    """One gallery row: the five stamps with colour bars (e⁻) and the aperture drawn."""
    from matplotlib.patches import Circle

    stamps = entry["stamps"]
    missing = [k for k in STAMP_KEYS if k not in stamps]
    if missing:
        raise CRBenchDataError(f"gallery entry {entry.get('star_id', '?')!r}: stamps "
                               f"{missing} missing")
    fig = _new_figure(15.5, 3.4)
    axes = fig.subplots(1, 5)
    clean = np.asarray(stamps["clean"], float)
    finite = clean[np.isfinite(clean)]
    vmin, vmax = (np.percentile(finite, 5), np.max(finite)) if finite.size else (0, 1)
    if vmax <= vmin:
        vmax = vmin + 1
    from matplotlib.colors import AsinhNorm

    lin = max((vmax - vmin) / 30.0, 1e-6)
    for ax, key, title in zip(axes, STAMP_KEYS, STAMP_TITLES):
        a = np.asarray(stamps[key], float)
        if key == "original_minus_clean":
            m = np.nanmax(np.abs(a)) if np.isfinite(a).any() else 1.0
            im = ax.imshow(a, origin="lower", cmap="RdBu_r", vmin=-m or -1, vmax=m or 1)
        elif key == "abs_clean_minus_cleaned":
            # scale on the star (aperture + 2 px) so that far-away fills do not hide it
            yy, xx = np.mgrid[:a.shape[0], :a.shape[1]]
            c0 = (a.shape[0] - 1) / 2
            near = np.hypot(yy - c0, xx - c0) <= float(entry.get("radius") or 3) + 2
            vals = a[near & np.isfinite(a)]
            m = float(vals.max()) if vals.size and vals.max() > 0 else (
                np.nanmax(a) if np.isfinite(a).any() else 1.0)
            im = ax.imshow(a, origin="lower", cmap="magma", vmin=0, vmax=m or 1)
        else:
            im = ax.imshow(a, origin="lower", cmap="gray",
                           norm=AsinhNorm(linear_width=lin, vmin=vmin, vmax=vmax))
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label("e⁻", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        half = (a.shape[0] - 1) / 2
        if entry.get("radius"):
            cx = half + (float(entry["x"]) - round(float(entry["x"]))) if "x" in entry else half
            cy = half + (float(entry["y"]) - round(float(entry["y"]))) if "y" in entry else half
            ax.add_patch(Circle((cx, cy), float(entry["radius"]), fill=False, ec="#2ca02c",
                                lw=1.0))
    return fig


# --------------------------------------------------------------------------- sections

def _table1(rows: list[Mapping[str, Any]]):
    """{dataset: (regions, detectors, {(region, detector): row})}."""
    out: dict[str, Any] = {}
    for r in rows:
        ds = str(r.get("dataset", ""))
        regions, dets, cells = out.setdefault(ds, ([], [], {}))
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
    from pytest_crbench.science.photometry import photometry_summary

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
        data = _png(fig)
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


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;
max-width:1320px;padding:16px 28px;color:#1d1d1f;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:6px}
h2{margin-top:2.2em;border-bottom:1px solid #bbb;padding-bottom:3px}
table{border-collapse:collapse;margin:10px 0 18px;font-size:14px}
th,td{border:1px solid #c8c8c8;padding:4px 9px;text-align:right}
th{background:#eef1f5}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
figure{margin:12px 0 26px}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:13px;color:#555}
.meta td{text-align:left}.warn{color:#a33}nav ul{columns:2}
"""


def _build(results: Mapping[str, Any]) -> _Page:
    page = _Page(str(results.get("title") or "pytest-crbench report"))
    meta = results.get("meta") or {}

    # Table 1 -------------------------------------------------------------------------
    page.section("table1", "Pixel scores per star region (Table 1)")
    t1 = _table1(results.get("table1") or [])
    if not t1:
        page.para("No pixel scores in these results.")
    for ds, (regions, dets, cells) in t1.items():
        head = ("<tr><th rowspan=2>region</th>" + "".join(
            f"<th colspan=2>{html.escape(d)}</th>" for d in dets) + "</tr><tr>" +
            "<th>recall %</th><th>precision %</th>" * len(dets) + "</tr>")
        header = ["region"] + [f"{d} {m} %" for d in dets for m in ("recall", "precision")]
        rows = []
        for reg in regions:
            row = [_region_label(reg)]
            for d in dets:
                c = cells.get((reg, d), {})
                row += [_pct(c.get("recall")), _pct(c.get("precision"))]
            rows.append(row)
        page.table(header, rows, header_html=head,
                   caption=f"Dataset {ds}: recall and precision (%) by region" if ds
                   else "Recall and precision (%) by region")
    page.para("Regions: the whole image, and the connected star regions above k × the "
              "background RMS of the clean reference (larger k = closer to star centres).")

    # Photometry ----------------------------------------------------------------------
    page.section("photometry", "Photometry (Fig. 3)")
    phot = _photometry(results)
    rows = []
    for det, ds, lab, b in _phot_rows(phot):
        rows.append([html.escape(det), html.escape(ds), html.escape(lab), str(b["n"]),
                     str(b["n_contaminated"])] + [_pct(b.get(k)) for k, _ in _PHOT_COLS])
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

    # Density -------------------------------------------------------------------------
    page.section("density", "Cosmic-ray density (Fig. 6)")
    dens = results.get("density") or {}
    rows = []
    for det, rel in dens.items():
        for q, e in rel.items():
            fit = e.get("fit")
            rows.append([html.escape(det), html.escape(q), str(len(e.get("x", []))),
                         _num(fit.slope if fit else None), _num(fit.intercept if fit else None),
                         _num(fit.r if fit else None, "{:.3f}"),
                         _num(fit.p if fit else None, "{:.2g}"),
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
                     _pct(l["level"]),
                     "no limit" if l.get("seconds") is None else f"{l['seconds']:.0f}"]
                    for l in limits],
                   caption="Longest exposure keeping the fitted fraction below the level")
    page.figure("fig6_density.png", fig_density(dens),
                "Fig. 6 — (a) contaminated stars and (b) anomalous results per star size "
                "against the cosmic-ray pixel fraction, with least-squares lines")

    # Stability -----------------------------------------------------------------------
    page.section("stability", "Stability over time (Figs. 7 and 8)")
    stab = results.get("stability") or {}
    rows = []
    for det, st in stab.items():
        for key, label in (("f1", "F1 %"), ("f2", "F2 %"), ("rms", "trimmed RMS")):
            b = st.get(key) or {}
            conv = _pct if key != "rms" else (lambda v: _num(v, "{:.4f}"))
            rows.append([html.escape(det), label, str(b.get("n", 0)), conv(b.get("mean")),
                         conv(b.get("std")), f"{conv(b.get('lower'))} … {conv(b.get('upper'))}",
                         ("<b>" + html.escape(", ".join(b["outliers"])) + "</b>")
                         if b.get("outliers") else ("none" if b.get("std") is not None
                                                    else html.escape(b.get("reason") or ""))])
    if rows:
        page.table(["detector", "quantity", "groups", "mean", "σ", "mean ± 3σ",
                    "groups outside (vs. the other groups' interval)"], rows,
                   caption="Per-group scores over observation dates")
        grow = []
        for det, st in stab.items():
            for g in st.get("groups", []):
                grow.append([html.escape(det), html.escape(g["group"]), html.escape(g["date"]),
                             _pct(g["f1"]), _pct(g["f2"]), _num(g["rms"], "{:.4f}"),
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

    # Gallery -------------------------------------------------------------------------
    page.section("gallery", "Failure gallery")
    gallery = results.get("gallery") or []
    if not gallery:
        page.para("No anomalous star to show.")
    for i, entry in enumerate(gallery):
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
        page.figure(f"gallery_{i:02d}.png", fig_gallery_entry(entry), " · ".join(bits))

    # Assemble ------------------------------------------------------------------------
    head_meta = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in meta.items())
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in page.toc)
    page.html = ([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
        f'<table class="meta">{head_meta}</table>' if head_meta else "",
        f"<nav><ul>{toc}</ul></nav>"] + page.html + ["</body></html>"])
    md_meta = [f"- **{k}**: {v}" for k, v in meta.items()]
    page.md = [f"# {page.title}\n"] + ([("\n".join(md_meta) + "\n")] if md_meta else []) \
        + page.md
    return page


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
        page = _build(results)
        figdir = tmp / "figures"
        figdir.mkdir()
        for name, data in page.figures.items():
            (figdir / name).write_bytes(data)
        (tmp / html_name).write_text("\n".join(page.html), encoding="utf-8")
        (tmp / md_name).write_text("\n".join(page.md), encoding="utf-8")
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
