"""Results files: the JSON summary and the per-exposure mask FITS files.

JSON (``"schema": "crbench-results/3"``), written once and atomically::

    {
      "schema": "crbench-results/3",
      "provenance": {"package": "pytest-crbench", "version": ..., "python": ...,
                     "numpy": ..., "settings": {...},
                     "reference": {"rule": "astrodrizzle" | "noise", "snr": [s1, s2],
                                   "scale": [m1, m2], "grow": n, "ctegrow": n,
                                   "saturation": ..., "sat_box": 7},  # scale, grow,
                                                          # ctegrow: astrodrizzle only
                     "truth_snr": n | null,               # null: no dataset has CRTRUTH
                     "detectors": {spec: version, ...},
                     "datasets": {name: {"version": ..., "seed": ..., "files": {name: sha256}}}},
      "scores": [
        {"detector": spec, "dataset": name, "group": g | null, "exposure": e | null,
         "region": "full" | "k3" | ..., "against": "reference" | "truth",
         "truth": "CRTRUTH > 5 sigma" | null,         # the truth a "truth" row used
         "tp": int, "fp": int, "fn": int,
         "excluded": int,                              # "truth" rows: faint charge left out
         "precision": float | null, "recall": ..., "f1": ..., "f2": ...,
         "undefined": {metric: reason, ...}}          # only where some score is null
      ],                                               # exposure null = pooled over the dataset
      "reference_audit": [                             # per exposure and region
        {"dataset": name, "group": g, "exposure": e, "region": "full" | "k3" | ...,
         "truth": "CRTRUTH > 5 sigma", "tp", "fp", "fn",   # against any injected charge
         "tp_significant", "fn_significant",               # against charge > n sigma
         "precision", "recall", "recall_significant", "truth_fraction"}
      ],
      "stars": [                                       # method.md section 4, per star image
        {"detector", "dataset", "group", "exposure", "star_id", "x", "y", "radius",
         "area", "size_bin", "flux_original", "flux_clean", "flux_cleaned", "flux_err",
         "ratio_cleaned", "ratio_original", "contaminated", "anomalous"}
      ],                                               # ratios null where F_clean <= 0
      "photometry": [
        {"detector", "dataset", "fill_method", "population": text,
         "overall": BLOCK, "by_size": {"16-50": BLOCK, "50-200": BLOCK, "200-400": BLOCK},
         "notes": [text, ...], "error": text | null}
      ],            # BLOCK: photometry_summary.photometry_summary (n, n_contaminated, ...,
                    # anomalous, inside_97_103, outside_90_110 over contaminated stars,
                    # *_of_all over all stars, "reasons" for null fractions)
      "density": [                                     # method.md section 5
        {"detector", "dataset",
         "quantities": {"contaminated" | "anomalous" | "anomalous_<bin>":
                        {"x": [...], "y": [...], "labels": ["group/exposure", ...],
                         "n_stars": [...], "n_skipped": int,
                         "fit": {"slope", "intercept", "r", "p", "n", "stderr",
                                 "intercept_stderr", "x_min", "x_max"} | null,
                         "reason": text | null}},
         "cr_fraction_per_second": float | null,
         "anomalous_level": float,
         "exposure_limits": [{"quantity", "level", "seconds": float | null, "note"}]}
      ],                                               # seconds null = no limit
      "stability": [                                   # method.md section 6
        {"detector", "dataset", "region": "k3", "nsigma", "trim", "center",
         "exclude_self": true,
         "groups": [{"group", "date", "tp", "fp", "fn", "f1", "f2", "rms", "n_ratios",
                     "reasons"}],
         "f1" | "f2" | "rms": {"n", "mean", "std", "lower", "upper", "outliers": [group],
                               "reason"},
         "leave_one_out": {"f1" | "f2" | "rms": {group: {"value", "mean", "std",
                                                         "lower", "upper"}}}}
      ],
      "smoke": [{"detector", "version", "dataset", "note",        # smoke-only datasets:
                 "exposures": [{"group", "exposure", "shape",      # run, never scored
                                "flagged_fraction", "seconds"}]}],
      "sweeps": [                                      # probability detectors only
        {"detector", "dataset", "threshold": float,
         "grid": {"size": 1641, "rule": "probability >= threshold", "definition"},
         "ks": [...],
         "histograms": {region: {"positive" | "negative": {"bins": [i], "counts": [n]}}},
         "summary": {region: {"auc", "average_precision", "positives", "negatives",
                              "undefined": text | null,
                              "at_fpr": {"0.0005" | "0.005": {"fpr", "tpr", "precision",
                                                             "thresholds", "reason"}}}}}
      ],                                   # sparse histograms: non-zero bins only
      "notes": [{"detector", "dataset", "note"}],   # e.g. data outside a model's domain;
                                                    # detector null: a note on the data
      "complete": true | false,     # false: a pytest-xdist worker crashed, results partial
      "incomplete": [text, ...],    # what is missing and why (the crash), [] if complete
      "bootstrap": {"method": "percentile", "unit": "groups, then exposures within each
                    drawn group (two-stage bootstrap)", "stability_unit": "groups",
                    "replicates": 1000, "seed": 0, "confidence": 0.95},
      "intervals": [                                   # every pooled score, bench/intervals.py
        {"detector", "dataset", "kind": "pixels" | "photometry" | "stability",
         "part": region | size bin | "groups", "metric", "value",
         "interval": [low, high] | null, "reason"}   # reason: why there is no interval
      ],
      "comparison": {"baseline": spec | null, "max_drop": float,   # --crbench-baseline
                     "differences": [{"candidate", "baseline", "dataset",
                                      "kind": "pixels" | "photometry" | "stars" | "stability",
                                      "part", "metric", "candidate_value", "baseline_value",
                                      "delta": {"value", "interval", "reason"},
                                      "higher_is_better", "verdict",
                                      # McNemar rows (kind stars, metric anomalous):
                                      "pairs", "baseline_only", "candidate_only",
                                      "p_value"}]},
      "floor_warnings": [text],                      # floors made with another version
      "timing": {"<detector> | <dataset>": seconds, ...}   # informative, not deterministic
    }

Every non-finite number is written as null.  Changes from ``crbench-results/2``: score
rows carry ``against`` (and ``truth``/``excluded`` for rows scored against the
simulation truth, which are new); ``reference_audit`` rows are per region and carry
``region``, ``truth``, ``tp_significant`` and ``fn_significant``; the provenance records
the reference rule with its parameters (``reference``) and ``truth_snr``.  Changes from
``crbench-results/1``: the ``stars``, ``photometry``, ``density`` and ``stability``
sections.

Mask files (``--crbench-save-masks DIR``): ``DIR/<dataset>/<detector>/<exposure>.fits``
with uint8 extensions ``REFMASK`` (reference CR mask), ``IGNORE``, ``PRED`` (detector
mask), int16 ``REGION`` (largest k whose star region holds the pixel, 0 outside) and,
where the exposure carries ``CRTRUTH``, uint8 ``TRUTH`` (1 = true cosmic ray, charge
> ``truth_snr`` σ; 2 = faint charge, left out of both classes; 0 = clean).
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from pytest_crbench.bench.analysis import Analysis
from pytest_crbench.bench.evaluation import Evaluation, PreparedDataset
from pytest_crbench.bench.records import DatasetSummary, jsonable
from pytest_crbench.bench.store import RunResults
from pytest_crbench._util import atomic_write
from pytest_crbench._version import __version__

SCHEMA = "crbench-results/3"


def provenance(settings: dict[str, Any], detectors: dict[str, str],
               datasets: Iterable[DatasetSummary]) -> dict[str, Any]:
    """Where the results come from.  ``reference`` (the rule and its parameters) and
    ``truth_snr`` are what make two runs' scores comparable."""
    datasets = list(datasets)
    reference = next((d.reference for d in datasets if d.reference), None)
    truth_snr = next((d.truth_snr for d in datasets if d.truth_snr is not None), None)
    return {
        "package": "pytest-crbench", "version": __version__,
        "python": platform.python_version(), "numpy": np.__version__,
        "settings": settings, "reference": reference, "truth_snr": truth_snr,
        "detectors": dict(sorted(detectors.items())),
        "datasets": {d.name: {"version": d.version, **d.provenance} for d in datasets},
    }


def write_json(path: Path, document: dict[str, Any]) -> Path:
    text = json.dumps(document, indent=1, sort_keys=False, allow_nan=False, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def analysis_sections(analyses: Iterable[Analysis]) -> dict[str, list]:
    """The ``stars``, ``photometry``, ``density`` and ``stability`` sections."""
    out: dict[str, list] = {"stars": [], "photometry": [], "density": [], "stability": []}
    for a in analyses:
        head = {"detector": a.detector, "dataset": a.dataset}
        out["stars"].extend(a.stars)
        phot = a.photometry.to_record() if a.photometry is not None \
            else {"overall": None, "by_size": {}}
        out["photometry"].append({**head, "fill_method": a.fill_method, **phot,
                                  "notes": a.notes, "error": a.error})
        if a.density is not None:
            out["density"].append({**head, **a.density.to_record()})
        if a.stability is not None:
            out["stability"].append({**head, **a.stability.to_record()})
    return jsonable(out)


def sweep_section(evaluations: Iterable[Evaluation]) -> list[dict[str, Any]]:
    """The ``sweeps`` section: one entry per (probability detector, dataset)."""
    return jsonable([{"detector": e.detector, "dataset": e.dataset, "threshold": e.threshold,
                      **e.sweep.to_record()} for e in evaluations if e.sweep is not None])


def results_document(results: RunResults, settings: dict[str, Any],
                     incomplete: list[str] | tuple = ()) -> dict[str, Any]:
    """The results JSON of a run (see the module docstring for the layout);
    ``incomplete`` says why results are missing (a crashed pytest-xdist worker)."""
    evaluations, datasets = results.evaluations, results.dataset_summaries
    detectors = {e.detector: e.version for e in evaluations}
    doc = {
        "schema": SCHEMA,
        "provenance": provenance(settings, detectors, datasets),
        "scores": [row for e in evaluations for row in e.score_rows()],
        "reference_audit": [{"dataset": d.name, **row.to_record()}
                            for d in datasets for row in d.audit],
        **analysis_sections(results.analyses),
        "smoke": [s.to_record() for s in results.smoke_results],
        "notes": [n.to_record() for n in results.notes]
        + [{"detector": None, "dataset": d.name, "note": n} for d in datasets for n in d.notes],
        "sweeps": sweep_section(evaluations),
        "complete": not incomplete,
        "incomplete": list(incomplete),
    }
    doc["timing"] = {f"{e.detector} | {e.dataset}": round(e.seconds, 3) for e in evaluations}
    return doc


def safe_name(text: str) -> str:
    """A file-name-safe version of a detector spec or exposure name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "unnamed"


def write_masks(directory: Path, evaluation: Evaluation, prepared: PreparedDataset) -> list[Path]:
    """One FITS file per exposure with REFMASK, IGNORE, PRED (uint8), REGION (int16) and
    TRUTH (uint8) where the exposure carries CRTRUTH."""
    from astropy.io import fits

    out = []
    folder = Path(directory) / safe_name(evaluation.dataset) / safe_name(evaluation.detector)
    for pe, er in zip(prepared.exposures, evaluation.exposures):
        primary = fits.PrimaryHDU()
        h = primary.header
        h["DETECTOR"] = (evaluation.detector[:68], "cosmic-ray detector spec")
        h["DATASET"] = evaluation.dataset
        h["GROUP"] = er.group
        h["EXPOSURE"] = er.exposure
        h["REGIONK"] = (",".join(str(k) for k in prepared.ks), "star-region thresholds k")
        h["COMMENT"] = "REFMASK: reference CR mask; IGNORE: excluded pixels; PRED: detector"
        h["COMMENT"] = "REGION: largest k whose region (> k x background RMS) holds the pixel"
        h["REFRULE"] = (prepared.reference.rule, "reference rule")
        hdus = fits.HDUList([
            primary,
            fits.ImageHDU(pe.crmask.astype(np.uint8), name="REFMASK"),
            fits.ImageHDU(pe.ignore.astype(np.uint8), name="IGNORE"),
            fits.ImageHDU(er.mask.astype(np.uint8), name="PRED"),
            fits.ImageHDU(pe.rmap.astype(np.int16), name="REGION"),
        ])
        if pe.truth is not None:
            truth = np.where(pe.truth.crmask, 1, np.where(pe.truth.excluded, 2, 0))
            hdu = fits.ImageHDU(truth.astype(np.uint8), name="TRUTH")
            hdu.header["TRUTHSNR"] = (pe.truth.n_sigma, "true CR: CRTRUTH > TRUTHSNR x noise")
            hdu.header["COMMENT"] = "1: true cosmic ray; 2: faint charge, left out; 0: clean"
            hdus.append(hdu)
        path = folder / f"{safe_name(er.exposure)}.fits"
        out.append(atomic_write(path, lambda tmp, h=hdus: h.writeto(tmp, overwrite=True)))
    return out


__all__ = ["SCHEMA", "provenance", "analysis_sections", "results_document", "write_json",
           "safe_name", "write_masks"]
