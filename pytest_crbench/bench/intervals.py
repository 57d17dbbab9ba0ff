"""Bootstrap intervals on every pooled score of one detector on one dataset.

A :class:`Sample` is what the bootstrap needs of a run, per exposure: the TP/FP/FN
counts of every region, the star rows (``group``, ``exposure``, ``star_id``,
``size_bin``, ``contaminated``, ``anomalous``, ``ratio_cleaned``) and the per-group
stability values.  It is built from a live :class:`~pytest_crbench.bench.evaluation.Evaluation`
and its :class:`~pytest_crbench.bench.analysis.Analysis`, or from a saved results JSON
(``scores`` rows with an exposure, ``stars`` rows, ``stability`` groups) — the two give
the same numbers, so ``crbench compare`` on two saved files agrees with
``--crbench-baseline`` in one session.

:func:`sample_intervals` gives one :class:`ScoreInterval` per pooled score:

* ``pixels``: precision, recall, F1, F2 per region (``full``, ``k3`` …);
* ``photometry``: ``anomalous``, ``inside_97_103``, ``outside_90_110`` (over contaminated
  stars, as :func:`~pytest_crbench.science.photometry.photometry_summary`) for all stars
  and per size bin;
* ``stability``: the mean over groups of F1, F2 and the trimmed flux-ratio RMS.

Plain numpy (:mod:`pytest_crbench.science.bootstrap` does the resampling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from pytest_crbench.science.bootstrap import BootstrapConfig, Interval, Resampler, metric_terms
from pytest_crbench.science.metrics import METRICS

#: a pooled score needs this many positives (reference CR pixels for recall, flagged
#: pixels for precision, both for F-scores; contaminated stars for a photometric
#: fraction) before its interval is computed; below it the interval is undefined
MIN_INTERVAL_COUNT = 10

#: photometric fractions with an interval: field → (higher is better, description)
PHOTOMETRY_FIELDS: dict[str, tuple[bool, str]] = {
    "anomalous": (False, "anomalous / contaminated stars"),
    "inside_97_103": (True, "contaminated stars with F_cleaned/F_clean in [0.97, 1.03]"),
    "outside_90_110": (False, "contaminated stars with F_cleaned/F_clean outside [0.9, 1.1]"),
}
#: stability means over groups: quantity → higher is better
STABILITY_FIELDS: dict[str, bool] = {"f1": True, "f2": True, "rms": False}


@dataclass
class Sample:
    """Per-exposure data of one detector on one dataset (see the module docstring)."""

    detector: str
    dataset: str
    version: str
    keys: list[tuple[str, str]]  # (group, exposure), in dataset order
    regions: list[str]
    counts: dict[str, np.ndarray]  # region → (E, 3) int: tp, fp, fn
    stars: list[dict[str, Any]] = field(default_factory=list)
    stability: dict[str, dict[str, float]] = field(default_factory=dict)  # group → q → v

    @property
    def groups(self) -> list[str]:
        return [g for g, _ in self.keys]

    @classmethod
    def from_evaluation(cls, ev, analysis=None, against: str = "reference") -> "Sample":
        """The sample of an evaluation; ``against="truth"``: its scores against the
        simulation truth (exposures without CRTRUTH left out; no stars, no stability)."""
        exposures = ev.exposures
        if against == "truth":
            exposures = [e for e in ev.exposures if e.truth_counts is not None]
            analysis = None
        keys = [(e.group, e.exposure) for e in exposures]
        counts = {r: np.array([[c.tp, c.fp, c.fn] for c in (
                      e.truth_counts[r] if against == "truth" else e.counts[r]
                      for e in exposures)], dtype=np.int64).reshape(-1, 3)
                  for r in ev.regions}
        stars = list(analysis.stars) if analysis is not None else []
        stab = _stability_values(analysis.stability if analysis is not None else None)
        return cls(ev.detector, ev.dataset, ev.version, keys, list(ev.regions), counts,
                   stars, stab)

    def aligned(self, keys: list[tuple[str, str]]) -> "Sample":
        """The same sample with its exposures in the order ``keys``."""
        index = {k: i for i, k in enumerate(self.keys)}
        order = np.array([index[k] for k in keys], dtype=np.intp)
        return Sample(self.detector, self.dataset, self.version, list(keys), self.regions,
                      {r: c[order] for r, c in self.counts.items()}, self.stars,
                      self.stability)


def _stability_values(stability) -> dict[str, dict[str, float]]:
    """group → quantity → value (NaN where undefined), from a
    :class:`~pytest_crbench.bench.records.StabilityAnalysis` or its JSON record."""
    if stability is None:
        return {}
    record = stability if isinstance(stability, dict) else stability.to_record()
    return {g["group"]: {q: (np.nan if g.get(q) is None else float(g[q]))
                         for q in STABILITY_FIELDS} for g in record.get("groups", [])}


def samples_from_document(doc: dict[str, Any]) -> list[Sample]:
    """Every (detector, dataset) sample of a results JSON (schema crbench-results/2+)."""
    versions = (doc.get("provenance") or {}).get("detectors") or {}
    rows: dict[tuple[str, str], list[dict]] = {}
    for row in doc.get("scores", []):
        if row.get("exposure") is None:
            continue
        rows.setdefault((row["detector"], row["dataset"]), []).append(row)
    stars: dict[tuple[str, str], list[dict]] = {}
    for row in doc.get("stars", []):
        stars.setdefault((row["detector"], row["dataset"]), []).append(row)
    stab = {(s["detector"], s["dataset"]): s for s in doc.get("stability", [])}
    out = []
    for (det, ds), rs in rows.items():
        keys: list[tuple[str, str]] = []
        regions: list[str] = []
        cells: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        for r in rs:
            key = (r["group"], r["exposure"])
            if key not in keys:
                keys.append(key)
            if r["region"] not in regions:
                regions.append(r["region"])
            cells[(*key, r["region"])] = (int(r["tp"]), int(r["fp"]), int(r["fn"]))
        counts = {reg: np.array([cells.get((*k, reg), (0, 0, 0)) for k in keys],
                                dtype=np.int64).reshape(-1, 3) for reg in regions}
        out.append(Sample(det, ds, str(versions.get(det, "")), keys, regions, counts,
                          stars.get((det, ds), []), _stability_values(stab.get((det, ds)))))
    return out


# --------------------------------------------------------------------------- per exposure

def star_arrays(stars: Iterable[dict], keys: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Star rows as columns plus ``index``, the position of each row's exposure in ``keys``
    (-1 where the exposure is not in ``keys``)."""
    stars = list(stars)
    index = {k: i for i, k in enumerate(keys)}
    ratio = np.array([np.nan if s.get("ratio_cleaned") is None else float(s["ratio_cleaned"])
                      for s in stars], dtype=float)
    return {
        "index": np.array([index.get((s["group"], s["exposure"]), -1) for s in stars],
                          dtype=np.intp),
        "star_id": np.array([int(s["star_id"]) for s in stars], dtype=np.int64),
        "size_bin": np.array([str(s.get("size_bin", "")) for s in stars], dtype=object),
        "contaminated": np.array([bool(s["contaminated"]) for s in stars], dtype=bool),
        "anomalous": np.array([bool(s["anomalous"]) for s in stars], dtype=bool),
        "ratio": ratio,
    }


def per_exposure(mask: np.ndarray, index: np.ndarray, n: int,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Σ over the stars in ``mask`` of ``weights`` (default 1), per exposure (length n)."""
    sel = mask & (index >= 0)
    w = None if weights is None else np.where(sel, weights, 0.0)[sel]
    return np.bincount(index[sel], weights=w, minlength=n).astype(float)


def photometry_terms(cols: dict[str, np.ndarray], n: int, size_bin: str
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(numerator, denominator) per exposure of each :data:`PHOTOMETRY_FIELDS` fraction."""
    sel = np.ones(len(cols["index"]), bool) if size_bin == "all" \
        else cols["size_bin"] == size_bin
    cont = cols["contaminated"] & sel
    ratio = cols["ratio"]
    finite = np.isfinite(ratio)
    with np.errstate(invalid="ignore"):
        inside = (ratio >= 0.97) & (ratio <= 1.03) & finite
        outside = ((ratio < 0.9) | (ratio > 1.1)) & finite
    idx = cols["index"]
    den_f = per_exposure(cont & finite, idx, n)
    return {"anomalous": (per_exposure(cont & cols["anomalous"], idx, n),
                          per_exposure(cont, idx, n)),
            "inside_97_103": (per_exposure(cont & inside, idx, n), den_f),
            "outside_90_110": (per_exposure(cont & outside, idx, n), den_f)}


def size_bins(stars: Iterable[dict]) -> list[str]:
    """``"all"`` and the size bins present, in the order of their lower edge."""
    labels = {str(s.get("size_bin")) for s in stars if s.get("size_bin")}

    def lower(lab: str) -> float:
        try:
            return float(lab.split("-")[0])
        except ValueError:
            return float("inf")

    return ["all"] + sorted(labels, key=lambda lab: (lower(lab), lab))


def pixel_count(metric: str, counts: np.ndarray) -> tuple[float, str]:
    """The positives a pixel metric rests on, and their name (for min-count rules)."""
    tp, fp, fn = counts.sum(axis=0) if len(counts) else (0, 0, 0)
    if metric == "recall":
        return float(tp + fn), "reference CR pixels"
    if metric == "precision":
        return float(tp + fp), "flagged pixels"
    return float(min(tp + fn, tp + fp)), "reference CR pixels or flagged pixels"


# --------------------------------------------------------------------------- intervals

@dataclass(frozen=True)
class ScoreInterval:
    """One pooled score with its interval; ``kind`` pixels / photometry / stability,
    ``part`` the region, size bin or "groups"."""

    detector: str
    dataset: str
    kind: str
    part: str
    metric: str
    interval: Interval

    def as_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "dataset": self.dataset, "kind": self.kind,
                "part": self.part, "metric": self.metric, **self.interval.as_dict()}


def sample_intervals(sample: Sample, config: BootstrapConfig = BootstrapConfig(), *,
                     resampler: Resampler | None = None,
                     min_count: float = MIN_INTERVAL_COUNT) -> list[ScoreInterval]:
    """Every pooled score of ``sample`` with its two-sided interval (``config``)."""
    rs = resampler or Resampler(sample.groups, config)
    head = (sample.detector, sample.dataset)
    out = []
    for region in sample.regions:
        c = sample.counts[region]
        for metric in METRICS:
            n, what = pixel_count(metric, c)
            num, den = metric_terms(metric, c[:, 0], c[:, 1], c[:, 2])
            out.append(ScoreInterval(*head, "pixels", region, metric,
                                     rs.ratio(num, den, count=n, min_count=min_count,
                                              what=what)))
    if sample.stars:
        cols = star_arrays(sample.stars, sample.keys)
        for size_bin in size_bins(sample.stars):
            terms = photometry_terms(cols, len(sample.keys), size_bin)
            for fld, (num, den) in terms.items():
                out.append(ScoreInterval(*head, "photometry", size_bin, fld, rs.ratio(
                    num, den, count=float(terms["anomalous"][1].sum()),
                    min_count=min_count, what="contaminated stars")))
    if sample.stability:
        for q in STABILITY_FIELDS:
            values = [sample.stability.get(g, {}).get(q, np.nan) for g in rs.group_labels]
            out.append(ScoreInterval(*head, "stability", "groups", q, rs.group_mean(values)))
    return out


def bootstrap_meta(config: BootstrapConfig) -> dict[str, Any]:
    """What the JSON records about the resampling."""
    from pytest_crbench.science.bootstrap import GROUP_UNIT, UNIT

    return {"method": "percentile", "unit": UNIT, "stability_unit": GROUP_UNIT,
            **config.as_dict()}


__all__ = ["Sample", "samples_from_document", "ScoreInterval", "sample_intervals",
           "photometry_terms", "star_arrays", "size_bins", "pixel_count", "bootstrap_meta",
           "PHOTOMETRY_FIELDS", "STABILITY_FIELDS", "MIN_INTERVAL_COUNT"]
