"""Everything a run writes when it ends: results JSON, mask files, generated floors, report.

Called by the pytest plugin at session end (and usable from a script or a CLI on any
:class:`~pytest_crbench.bench.run.BenchSession`).  Each output is written once and
atomically; each function returns one line per output for the terminal summary.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_crbench.bench.analysis import Analysis
from pytest_crbench.bench.evaluation import Evaluation

__all__ = ["write_masks", "write_outputs", "report_results"]


def write_masks(bench) -> list[str]:
    """Mask files of the evaluations computed in this process (``--crbench-save-masks``)."""
    from pytest_crbench.bench.results import write_masks as write_mask_files

    directory = bench.settings.save_masks
    if directory is None:
        return []
    prepared = bench.prepared_datasets()
    n = 0
    for ev in bench.results.evaluations:
        pd = prepared.get(ev.dataset)
        if pd is not None and all(e.mask is not None for e in ev.exposures):
            n += len(write_mask_files(directory, ev, pd))
    return [f"mask files: {n} in {directory}"] if n else []


def write_outputs(bench) -> list[str]:
    """Write the results JSON, the generated floors and the report of a finished run."""
    from pytest_crbench.bench.floors import generate_floors, write_generated_floors
    from pytest_crbench.bench.results import results_document, write_json

    lines = []
    s, results = bench.settings, bench.results
    if s.json is not None and results:
        path = write_json(s.json, results_document(results, s.as_dict()))
        lines.append(f"results JSON: {path}")
    if s.generate_floors is not None and results.evaluations:
        new = generate_floors(bench.checks, results.observed, s.floors_margin)
        path = write_generated_floors(s.generate_floors, new, s.floors_margin)
        lines.append(f"floors written: {path} ({len(new)} floors)")
    if s.report is not None and results.evaluations:
        from pytest_crbench.reporting.html import write_report

        evaluations = results.evaluations
        meta = {"detectors": ", ".join(dict.fromkeys(e.detector for e in evaluations)),
                "datasets": ", ".join(dict.fromkeys(e.dataset for e in evaluations)),
                "fill method": s.fill_method,
                "anomalous level": f"{s.anomalous_level:g}"}
        html_path, _ = write_report(s.report, report_results(evaluations, results.analyses,
                                                             meta))
        lines.append(f"report: {html_path} (and report.md)")
    return lines


def report_results(evaluations: list[Evaluation], analyses: list[Analysis],
                   meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``results`` dict of :func:`pytest_crbench.reporting.html.write_report` for a run.

    Detectors are labelled ``<detector>`` with one dataset, ``<detector> on <dataset>``
    with several (the report keys its figures by that label).
    """
    datasets = {a.dataset for a in analyses} | {e.dataset for e in evaluations}
    label = (lambda det, ds: det) if len(datasets) <= 1 else (lambda det, ds: f"{det} on {ds}")
    table1 = []
    for ev in evaluations:
        for region in ev.regions:
            sc = ev.scores(region)
            table1.append({"detector": ev.detector, "dataset": ev.dataset, "region": region,
                           **{m: s.value for m, s in sc.as_dict().items()},
                           **sc.counts.as_dict()})
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
    return {"title": "pytest-crbench report", "meta": meta, "table1": table1,
            "photometry": photometry, "stars": stars, "density": density,
            "cr_fraction_per_second": next(iter(rates.values())) if len(rates) == 1 else None,
            "exposure_limits": limits, "stability": stability, "gallery": gallery}


def _nan(v):
    return math.nan if v is None else v

