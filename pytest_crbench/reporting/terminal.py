"""Plain-text tables for the terminal summary (no pytest here)."""

from __future__ import annotations

from pytest_crbench.bench.checks import PhotometryCheck, PixelFloorCheck

__all__ = ["score_table", "paper_table", "photometry_table", "density_lines",
           "stability_lines", "summary_lines"]

METRIC_ORDER = ("recall", "precision", "f1", "f2")

_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1", "f2": "F2"}


def _cell(value, floor) -> str:
    if value is None:
        text = "undef."
    else:
        text = f"{100 * value:5.1f}"
    if floor is not None:
        margin = "" if value is None else f" {100 * (value - floor):+5.1f}"
        text += f" (>={100 * floor:4.1f}{margin})"
    return text


def score_table(evaluation, floors: dict) -> list[str]:
    """Rows = regions, columns = recall/precision/F1/F2 in %, each with floor and margin."""
    header = ["region"] + [_LABELS[m] for m in METRIC_ORDER]
    rows = []
    for region in evaluation.regions:
        sc = evaluation.scores(region)
        row = [region]
        for metric in METRIC_ORDER:
            floor = floors.get(PixelFloorCheck(evaluation.detector, evaluation.dataset,
                                               region, metric))
            row.append(_cell(sc.metric(metric).value, floor))
        rows.append(row)
    return _format(header, rows)


def paper_table(evaluations, dataset: str) -> list[str]:
    """Table 1 of the paper: regions as columns, recall and precision (%) per detector."""
    evs = [e for e in evaluations if e.dataset == dataset]
    if not evs:
        return []
    regions = evs[0].regions
    header = ["detector", "metric"] + [r.removeprefix("k") if r != "full" else r for r in regions]
    rows = []
    for ev in evs:
        for metric in ("recall", "precision"):
            vals = [ev.scores(r).metric(metric).value for r in regions]
            rows.append([ev.detector, metric] + ["-" if v is None else f"{100 * v:.1f}"
                                                 for v in vals])
    return _format(header, rows)


def _format(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]



# --------------------------------------------------------------------------- analyses

def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _limited(value, key, floors) -> str:
    text = _pct(value)
    limit = floors.get(key)
    if limit is not None:
        text += f" ({'<=' if key.kind == 'max' else '>='}{100 * limit:.1f})"
    return text


def photometry_table(analysis, floors: dict) -> list[str]:
    """Rows = all stars and each size bin; fractions (%) over contaminated stars."""
    if analysis.photometry is None:
        return []
    header = ["stars", "n", "contaminated", "anomalous", "in [0.97,1.03]", "out [0.9,1.1]"]
    rows = []
    for size_bin, b in analysis.photometry.blocks():
        key = lambda m: PhotometryCheck(analysis.detector, analysis.dataset, size_bin, m)
        rows.append([size_bin if size_bin == "all" else f"{size_bin} px", str(b.n),
                     f"{b.n_contaminated} ({_pct(b.contaminated)} %)",
                     _limited(b.anomalous, key("max_anomalous"), floors),
                     _limited(b.inside_97_103, key("min_inside_97_103"), floors),
                     _limited(b.outside_90_110, key("max_outside_90_110"), floors)])
    return _format(header, rows)


def density_lines(analysis) -> list[str]:
    """Fit lines y = slope·x + intercept against the CR pixel fraction, and the limits."""
    d = analysis.density
    if d is None:
        return []
    lines = []
    for q, e in d.quantities.items():
        fit = e.fit
        if fit is None:
            lines.append(f"{q}: no fit ({e.reason})")
            continue
        r = "r undefined" if fit.r is None else f"r = {fit.r:.2f}"
        p = "" if fit.p is None else f", p = {fit.p:.2g}"
        lines.append(f"{q}: y = {fit.slope:.3g} x {fit.intercept:+.3g} ({r}{p}, "
                     f"{fit.n} exposures)")
    rate = d.cr_fraction_per_second
    if rate is not None:
        lines.append(f"CR pixel fraction per second: {rate:.3g} ({100 * rate * 1000:.2f} % "
                     "per 1000 s)")
    limits = []
    for lim in d.exposure_limits:
        q = lim.quantity.removeprefix("anomalous").lstrip("_") or "all"
        if lim.seconds is not None:
            text = f"{lim.seconds:.0f} s"
        elif d.quantities[lim.quantity].fit is None:
            text = "no fit"
        else:
            text = "no limit"
        limits.append(f"{q} {text}")
    if limits:
        lines.append(f"longest exposure with anomalous <= {100 * d.anomalous_level:g} %: "
                     + ", ".join(limits))
    return lines


def stability_lines(analysis) -> list[str]:
    """One line: per-group mean ± σ of F1, F2, trimmed RMS and the groups outside."""
    st = analysis.stability
    if st is None:
        return []
    parts, outside = [], []
    for q, label in (("f1", "F1"), ("f2", "F2"), ("rms", "RMS")):
        b = st.band(q)
        if b.mean is None:
            parts.append(f"{label} -")
            continue
        if q == "rms":
            val = f"{b.mean:.4f}" + ("" if b.std is None else f" ± {b.std:.4f}")
        else:
            val = f"{100 * b.mean:.1f}" + ("" if b.std is None else
                                           f" ± {100 * b.std:.1f}") + " %"
        parts.append(f"{label} {val}")
        outside += [f"{g} ({label})" for g in b.outliers]
    n = len(st.groups)
    reason = st.reason
    tail = (f"not assessed: {reason}" if reason else
            "outside the leave-one-out " + f"{st.nsigma:g}σ-equivalent interval: "
            + (", ".join(outside) if outside else "none"))
    return [f"stability ({n} groups, region {st.region}): " + "; ".join(parts),
            "  " + tail]


def summary_lines(bench) -> list[str]:
    """The terminal summary of a :class:`~pytest_crbench.bench.run.BenchSession`."""
    from pytest_crbench.science.reference import pooled_audit

    out: list[str] = []
    results = bench.results
    for ds in bench.settings.dataset:
        table = paper_table(results.evaluations, ds)
        if table:
            out.append(f"dataset {ds}: recall and precision (%) per star region "
                       "(region k: pixels above k x background RMS)")
            out += ["  " + line for line in table]
    for ev in results.evaluations:
        out += ["", f"{ev.detector} on {ev.dataset} ({len(ev.exposures)} exposures, "
                    f"{ev.seconds:.1f} s): score % (>= floor, margin)"]
        out += ["  " + line for line in score_table(ev, bench.floors)]
        note = results.note(ev.detector, ev.dataset)
        if note:
            out.append("  note: " + note)
        a = results.analysis(ev.detector, ev.dataset)
        if a is None:
            continue
        if a.error:
            out.append(f"  photometry: {a.error}")
        elif a.photometry is not None:
            out.append(f"  photometry (% of contaminated stars, F_cleaned/F_clean; "
                       f"cleaned: {a.fill_method}; (limit)):")
            out += ["    " + line for line in photometry_table(a, bench.floors)]
        out += ["  density: " + line for line in density_lines(a)]
        out += ["  " + line for line in stability_lines(a)]
        out += ["  note: " + note for note in a.notes]
    for sm in results.smoke_results:
        fr = [r.flagged_fraction for r in sm.exposures]
        out += ["", f"{sm.detector} on {sm.dataset} (smoke only, not scored: "
                    f"{len(fr)} exposures ran; flagged {100 * min(fr):.2f}–{100 * max(fr):.2f} "
                    "% of pixels)"]
        if sm.note:
            out.append("  note: " + sm.note)
    for summary in results.dataset_summaries:
        if summary.audit:
            a = pooled_audit([row.to_record() for row in summary.audit])
            out += ["", f"reference audit on {summary.name} against CRTRUTH: precision "
                        f"{100 * (a['precision'] or 0):.1f} %, recall "
                        f"{100 * (a['recall'] or 0):.1f} % ({a['n_exposures']} exposures)"]
    if not bench.floors:
        out.append("no floors configured: scores were reported, not asserted "
                   "(--crbench-floors PATH or [tool.crbench] floors)")
    out += list(bench.written)
    return out
