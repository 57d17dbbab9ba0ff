"""Everything a run writes when it ends: results JSON, mask files, generated floors, report.

Called by the pytest plugin at session end (and usable from a script or a CLI on any
:class:`~pytest_crbench.bench.run.BenchSession`).  Each output is written once and
atomically, and only as far as the run's end allows
(:class:`~pytest_crbench.bench.completion.RunEnd`: nothing after an interruption, the
completed results without generated floors after a crashed pytest-xdist worker); each
function returns one line per output for the terminal summary.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_crbench.bench.analysis import Analysis
from pytest_crbench.bench.completion import COMPLETE, CRASHED, INTERRUPTED, RunEnd
from pytest_crbench.bench.evaluation import Evaluation

__all__ = ["write_masks", "write_outputs", "report_results", "statistics_sections",
           "write_generated_floors"]


def write_masks(bench, end: RunEnd | None = None) -> list[str]:
    """Mask files of the evaluations computed in this process (``--crbench-save-masks``);
    none after an interruption."""
    from pytest_crbench.bench.results import write_masks as write_mask_files

    directory = bench.settings.save_masks
    if directory is None or (end is not None and end.state == INTERRUPTED):
        return []
    prepared = bench.prepared_datasets()
    n = 0
    for ev in bench.results.evaluations:
        pd = prepared.get(ev.dataset)
        if pd is not None and all(e.mask is not None for e in ev.exposures):
            n += len(write_mask_files(directory, ev, pd))
    return [f"mask files: {n} in {directory}"] if n else []


def write_outputs(bench, end: RunEnd | None = None) -> list[str]:
    """Write the results JSON, the generated floors and the report of a run that ended
    as ``end`` says (default: completed)."""
    from pytest_crbench.bench.results import results_document, write_json

    end = end or RunEnd()
    s, results = bench.settings, bench.results
    if end.state == INTERRUPTED:
        kept = [str(p) for p in (s.json, s.report, s.generate_floors, s.save_masks)
                if p is not None and p.exists()]
        return [f"crbench: the run was interrupted ({end.reason}): no output written"
                + (f"; kept the previous {', '.join(kept)}" if kept else "")]
    lines = []
    if end.state == CRASHED:
        pairs = len(results.evaluations_by_pair) + len(results.smoke_by_pair)
        lines.append(f"crbench: a pytest-xdist worker crashed ({end.reason}): wrote the "
                     f"completed results only ({pairs} detector/dataset pair(s))"
                     + ("; floors not generated" if s.generate_floors else ""))
    if s.json is not None and results:
        doc = results_document(results, s.as_dict(), end.crashed)
        doc.update(statistics_sections(bench))
        path = write_json(s.json, doc)
        lines.append(f"results JSON: {path}")
    if s.generate_floors is not None and results.evaluations and end.state == COMPLETE:
        lines.append(write_generated_floors(bench))
    if s.report is not None and results.evaluations:
        from pytest_crbench.reporting.html import write_report

        evaluations = results.evaluations
        meta = {"detectors": ", ".join(dict.fromkeys(e.detector for e in evaluations)),
                "datasets": ", ".join(dict.fromkeys(e.dataset for e in evaluations)),
                "reference": s.reference_config().describe(),
                "fill method": s.fill_method,
                "anomalous level": f"{s.anomalous_level:g}"}
        if end.state == CRASHED:
            meta["incomplete"] = end.reason
        if any(e.has_truth for e in evaluations):
            meta["truth"] = (f"CRTRUTH > {s.truth_snr:g} sigma (fainter injected charge "
                             "left out of both classes)")
        audits = {d.name: [row.to_record() for row in d.audit]
                  for d in results.dataset_summaries if d.audit}
        report = report_results(evaluations, results.analyses, meta, audits)
        report.update(statistics_sections(bench),
                      star_rows=[r for a in results.analyses for r in a.stars])
        html_path, _ = write_report(s.report, report)
        lines.append(f"report: {html_path} (and report.md)")
    return lines


def statistics_sections(bench) -> dict[str, Any]:
    """The ``bootstrap``, ``intervals``, ``comparison`` and ``floor_warnings`` sections of
    the results JSON (and of the report's input)."""
    from pytest_crbench.bench.intervals import bootstrap_meta
    from pytest_crbench.bench.records import jsonable

    s = bench.settings
    return jsonable({
        "bootstrap": bootstrap_meta(s.bootstrap()),
        "intervals": [i.as_dict() for ev in bench.results.evaluations
                      for i in bench.intervals(ev.detector, ev.dataset)],
        "comparison": {"baseline": s.baseline, "max_drop": s.max_drop,
                       "differences": [d.as_dict() for d in bench.comparisons()]},
        "floor_warnings": bench.floor_warnings()})


def write_generated_floors(bench) -> str:
    """``--crbench-generate-floors``: bootstrap bounds, comments, made_with tables."""
    from pytest_crbench.bench.floor_bounds import GeneratedFloors, bootstrap_floors, floors_header
    from pytest_crbench.bench.floors import write_floors

    s = bench.settings
    gen = GeneratedFloors()
    for ev in bench.results.evaluations:
        for against in ("reference", "truth") if ev.has_truth else ("reference",):
            bootstrap_floors(bench.sample(ev.detector, ev.dataset, against), s.bootstrap(),
                             confidence=s.floors_confidence,
                             min_positives=s.floors_min_positives,
                             min_stars=s.floors_min_stars, out=gen, against=against)
    made_with = {ev.detector: {"version": ev.version, "threshold": ev.threshold}
                 for ev in bench.results.evaluations}
    path = write_floors(s.generate_floors, gen.limits, skipped=gen.skipped,
                        made_with=made_with, header=floors_header(
                            s.floors_confidence, s.bootstrap(), s.floors_min_positives,
                            s.floors_min_stars))
    return (f"floors written: {path} ({len(gen.limits)} limits; {len(gen.skipped)} scores "
            "without a limit, see the comments)")


def report_results(evaluations: list[Evaluation], analyses: list[Analysis],
                   meta: dict[str, Any] | None = None,
                   audits: dict[str, list[dict]] | None = None) -> dict[str, Any]:
    """The ``results`` dict of :func:`pytest_crbench.reporting.html.write_report` for a run.

    Detectors are labelled ``<detector>`` with one dataset, ``<detector> on <dataset>``
    with several (the report keys its figures by that label).  ``audits`` maps a dataset
    to its reference-audit rows (:func:`pytest_crbench.science.truth.audit_reference`).
    """
    from pytest_crbench.science.truth import pooled_audit

    datasets = {a.dataset for a in analyses} | {e.dataset for e in evaluations}
    label = (lambda det, ds: det) if len(datasets) <= 1 else (lambda det, ds: f"{det} on {ds}")
    table1 = []
    for ev in evaluations:
        for against in ("reference", "truth") if ev.has_truth else ("reference",):
            for region in ev.regions:
                sc = ev.scores(region, against)
                table1.append({"detector": ev.detector, "dataset": ev.dataset,
                               "region": region, "against": against,
                               **{m: s.value for m, s in sc.as_dict().items()},
                               **sc.counts.as_dict()})
    audit = []
    for ds, rows in (audits or {}).items():
        regions = list(dict.fromkeys(r["region"] for r in rows))
        audit += [{"dataset": ds, **pooled_audit(rows, region)} for region in regions]
    photometry: dict[str, dict[str, Any]] = {}
    stars, density, stability, limits, gallery = {}, {}, {}, [], []
    rates = {}
    for a in analyses:
        lab = label(a.detector, a.dataset)
        if a.photometry is not None:
            photometry.setdefault(a.detector, {})[a.dataset] = a.photometry.to_record()
        if a.stars:
            stars[lab] = [{**r, "ratio_cleaned": _nan(r["ratio_cleaned"]),
                           "ratio_original": _nan(r["ratio_original"])} for r in a.stars]
        if a.density is not None:
            density[lab] = {q: {**e.to_record(), "fit": e.fit}
                            for q, e in a.density.quantities.items()}
            rates[a.dataset] = a.density.cr_fraction_per_second
            limits += [{"detector": lab, **lim.to_record()} for lim in a.density.exposure_limits]
        if a.stability is not None:
            stability[lab] = a.stability.to_record()
        gallery += [{"detector": lab, **e.to_record()} for e in a.gallery]
    meta = dict(meta or {})
    if len(rates) > 1:
        for ds, r in rates.items():
            meta[f"CR fraction per second ({ds})"] = "—" if r is None else f"{r:.3g}"
    from pytest_crbench.bench.results import sweep_section

    return {"title": "pytest-crbench report", "meta": meta, "table1": table1, "audit": audit,
            "sweeps": sweep_section(evaluations),
            "photometry": photometry, "stars": stars, "density": density,
            "cr_fraction_per_second": next(iter(rates.values())) if len(rates) == 1 else None,
            "exposure_limits": limits, "stability": stability, "gallery": gallery}


def _nan(v):
    return math.nan if v is None else v

