"""Plain-text tables for the terminal summary (no pytest here)."""

from __future__ import annotations

from pytest_crbench.bench.checks import PhotometryCheck, PixelFloorCheck
from pytest_crbench.reporting.formatting import pct

__all__ = ["score_table", "paper_table", "photometry_table", "density_lines",
           "stability_lines", "summary_lines"]

METRIC_ORDER = ("recall", "precision", "f1", "f2")

_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1", "f2": "F2"}


def _cell(value, floor, interval=None) -> str:
    if value is None:
        text = "undef."
    elif interval is not None:
        text = f"{interval:pct}" if interval.defined else f"{100 * value:.1f} [n/a]"
    else:
        text = f"{100 * value:5.1f}"
    if floor is not None:
        text += f" (>={100 * floor:4.1f})"
    return text


def _interval_index(intervals) -> dict:
    return {(i.kind, i.part, i.metric): i.interval for i in intervals or ()}


def score_table(evaluation, limit, intervals=None, against: str = "reference") -> list[str]:
    """Rows = regions, columns = recall/precision/F1/F2 in % with their bootstrap interval
    (``intervals``: :func:`pytest_crbench.bench.intervals.sample_intervals`; scores against
    the reference only) and floor (``limit(check)``: the floor of a check, or None)."""
    header = ["region"] + [_LABELS[m] for m in METRIC_ORDER]
    index = _interval_index(intervals)
    rows = []
    for region in evaluation.regions:
        sc = evaluation.scores(region, against)
        row = [region]
        for metric in METRIC_ORDER:
            floor = limit(PixelFloorCheck(evaluation.detector, evaluation.dataset, region,
                                          metric, against))
            row.append(_cell(sc.metric(metric).value, floor,
                             index.get(("pixels", region, metric))))
        rows.append(row)
    return _format(header, rows)


def paper_table(evaluations, dataset: str, against: str = "reference") -> list[str]:
    """Table 1 of the paper: regions as columns, recall and precision (%) per detector,
    against the reference or (``against="truth"``) the simulation truth."""
    evs = [e for e in evaluations if e.dataset == dataset
           and (against == "reference" or e.has_truth)]
    if not evs:
        return []
    regions = evs[0].regions
    header = ["detector", "metric"] + [r.removeprefix("k") if r != "full" else r for r in regions]
    rows = []
    for ev in evs:
        for metric in ("recall", "precision"):
            vals = [ev.scores(r, against).metric(metric).value for r in regions]
            rows.append([ev.detector, metric] + ["-" if v is None else f"{100 * v:.1f}"
                                                 for v in vals])
    return _format(header, rows)


def audit_table(audit_rows: list[dict], regions: list[str]) -> list[str]:
    """The reference against the truth per region: precision, recall and recall of the
    significant charge (%), pooled over the exposures."""
    from pytest_crbench.science.truth import pooled_audit

    header = ["reference vs truth"] + [r.removeprefix("k") if r != "full" else r
                                       for r in regions]
    pooled = [pooled_audit(audit_rows, r) for r in regions]
    rows = [[label] + ["-" if p[key] is None else f"{100 * p[key]:.1f}" for p in pooled]
            for label, key in (("precision", "precision"), ("recall", "recall"),
                               ("recall (significant)", "recall_significant"))]
    return _format(header, rows)


def _format(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]



# --------------------------------------------------------------------------- analyses

def _limited(value, check, limit, interval=None) -> str:
    text = pct(value, missing="-")
    if value is not None and interval is not None:
        text = f"{interval:pct}" if interval.defined else f"{text} [n/a]"
    bound = limit(check)
    if bound is not None:
        text += f" ({'<=' if check.kind == 'max' else '>='}{100 * bound:.1f})"
    return text


def photometry_table(analysis, limit, intervals=None) -> list[str]:
    """Rows = all stars and each size bin; fractions (%) over contaminated stars, with
    their bootstrap interval and limit (``limit(check)``)."""
    if analysis.photometry is None:
        return []
    index = _interval_index(intervals)
    header = ["stars", "n", "contaminated", "anomalous", "in [0.97,1.03]", "out [0.9,1.1]"]
    rows = []
    for size_bin, b in analysis.photometry.blocks():
        key = lambda m: PhotometryCheck(analysis.detector, analysis.dataset, size_bin, m)
        rows.append([size_bin if size_bin == "all" else f"{size_bin} px", str(b.n),
                     f"{b.n_contaminated} ({pct(b.contaminated, missing='-')} %)",
                     *[_limited(getattr(b, fld), key(metric), limit,
                                index.get(("photometry", size_bin, fld)))
                       for fld, metric in (("anomalous", "max_anomalous"),
                                           ("inside_97_103", "min_inside_97_103"),
                                           ("outside_90_110", "max_outside_90_110"))]])
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
    out: list[str] = []
    results = bench.results
    summaries = {d.name: d for d in results.dataset_summaries}
    for ds in bench.settings.dataset:
        table = paper_table(results.evaluations, ds)
        if not table:
            continue
        out.append(f"dataset {ds}: recall and precision (%) per star region "
                   "(region k: pixels above k x background RMS)")
        out.append(f"  against the reference: {bench.settings.reference_config().describe()}")
        out += ["  " + line for line in table]
        truth = paper_table(results.evaluations, ds, "truth")
        if truth:
            left_out = next(e.excluded("full") for e in results.evaluations
                            if e.dataset == ds and e.has_truth)
            out.append(f"  against the truth: CRTRUTH > {bench.settings.truth_snr:g} sigma "
                       f"({left_out} pixels of fainter injected charge left out of both "
                       "classes)")
            out += ["  " + line for line in truth]
        summary = summaries.get(ds)
        if summary is not None and summary.audit:
            rows = [row.to_record() for row in summary.audit]
            n = len({(r["group"], r["exposure"]) for r in rows})
            regions = next(e.regions for e in results.evaluations if e.dataset == ds)
            out.append(f"  reference audit against CRTRUTH ({n} exposures; significant: "
                       f"charge > {bench.settings.truth_snr:g} sigma):")
            out += ["  " + line for line in audit_table(rows, regions)]
        sweeps = {ev.detector: ev.sweep for ev in results.evaluations
                  if ev.dataset == ds and ev.sweep is not None}
        if sweeps:
            from pytest_crbench.reporting.sweep_figures import sweep_lines

            out += sweep_lines(sweeps, ds)
    from pytest_crbench.reporting.statistics import comparison_lines, interval_table

    s = bench.settings
    boot = (f"{100 * s.confidence:g} % bootstrap interval over groups and exposures "
            f"({s.bootstrap_replicates} replicates, seed {s.bootstrap_seed})")
    any_na = False
    for ev in results.evaluations:
        ivs = bench.intervals(ev.detector, ev.dataset)
        any_na |= any(i.interval.value is not None and not i.interval.defined for i in ivs)
        out += ["", f"{ev.detector} on {ev.dataset} ({len(ev.exposures)} exposures, "
                    f"{ev.seconds:.1f} s): score % [{boot}] (>= floor)"]
        out += ["  " + line for line in score_table(ev, bench.limit, ivs)]
        if any(isinstance(c, PixelFloorCheck) and c.against == "truth"
               and (c.detector, c.dataset) == (ev.detector, ev.dataset) for c in bench.floors):
            out.append("  against the truth:")
            out += ["  " + line for line in score_table(ev, bench.limit, against="truth")]
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
            out += ["    " + line for line in photometry_table(a, bench.limit, ivs)]
        out += ["  density: " + line for line in density_lines(a)]
        out += ["  " + line for line in stability_lines(a)]
        out += ["    " + line for line in interval_table(ivs, "stability")]
        out += ["  note: " + note for note in a.notes]
    for sm in results.smoke_results:
        fr = [r.flagged_fraction for r in sm.exposures]
        out += ["", f"{sm.detector} on {sm.dataset} (smoke only, not scored: "
                    f"{len(fr)} exposures ran; flagged {100 * min(fr):.2f}–{100 * max(fr):.2f} "
                    "% of pixels)"]
        if sm.note:
            out.append("  note: " + sm.note)
    for summary in results.dataset_summaries:
        out += [f"note ({summary.name}): {note}" for note in summary.notes]
    if any_na:
        out += ["", "[n/a]: no interval (too few positives or groups; the reasons are in "
                    "the results JSON)"]
    diffs = bench.comparisons()
    if diffs:
        out.append("")
        out += comparison_lines(diffs, max_drop=s.max_drop, confidence=s.confidence)
    out += [f"WARNING: {w}" for w in bench.floor_warnings()]
    if not bench.floors:
        out.append("no floors configured: scores were reported, not asserted "
                   "(--crbench-floors PATH or [tool.crbench] floors)")
    out += list(bench.written)
    return out
