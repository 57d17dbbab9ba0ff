"""Run a detector over a dataset and count TP/FP/FN per exposure and star region.

:func:`prepare` builds what every detector shares for a dataset — the reference of each
group, the star-region map of each exposure and the reference audit — once.
:func:`evaluate` then runs one detector over the prepared dataset.  Plain numpy: no
pytest here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pytest_crbench.detectors.base import Prediction, as_prediction
from pytest_crbench.bench.records import AuditRow, DatasetSummary
from pytest_crbench.science.metrics import Counts, ScoreSet, confusion
from pytest_crbench.science.exposures import Dataset, Exposure, Group
from pytest_crbench.science.reference import ReferenceConfig, audit_reference, build_reference
from pytest_crbench.science.regions import background, region_map, region_names, regions_from_map
from pytest_crbench.science.sweeps import ThresholdSweep


@dataclass
class PreparedExposure:
    group: Group
    exposure: Exposure
    clean: np.ndarray
    crmask: np.ndarray
    ignore: np.ndarray
    rmap: np.ndarray
    background_rms: float

    @property
    def cr_fraction(self) -> float:
        """Fraction of non-ignored pixels flagged as cosmic ray in the reference."""
        valid = ~self.ignore
        return float(self.crmask[valid].mean()) if valid.any() else float("nan")


@dataclass
class PreparedDataset:
    dataset: Dataset
    ks: list[int]
    exposures: list[PreparedExposure]
    audit: list[dict]
    seconds: float = 0.0

    @property
    def regions(self) -> list[str]:
        return region_names(self.ks)

    def summary(self) -> DatasetSummary:
        """What the results file needs of this dataset."""
        return DatasetSummary(self.dataset.name, self.dataset.version,
                              self.dataset.provenance,
                              [AuditRow.from_record(r) for r in self.audit], list(self.ks))


def prepare(dataset: Dataset, ks, ref_config: ReferenceConfig | None = None) -> PreparedDataset:
    """References, region maps and the reference audit of every group of ``dataset``."""
    t0 = time.perf_counter()
    prepared, audit = [], []
    for group in dataset.groups:
        ref = build_reference(group, ref_config)
        audit.extend(audit_reference(group, ref))
        for exp, clean, crmask, ignore in zip(group.exposures, ref.clean, ref.crmask, ref.ignore):
            bkg = background(clean, ignore)
            rmap = region_map(clean, ignore, ks, bkg=bkg)
            prepared.append(PreparedExposure(group, exp, clean, crmask, ignore, rmap, bkg.rms))
    return PreparedDataset(dataset, sorted(ks), prepared, audit, time.perf_counter() - t0)


@dataclass
class ExposureResult:
    group: str
    exposure: str
    counts: dict[str, Counts]
    mask: np.ndarray | None
    seconds: float
    cr_fraction: float = float("nan")


@dataclass
class Evaluation:
    """One detector on one prepared dataset."""

    detector: str
    version: str
    dataset: str
    regions: list[str]
    exposures: list[ExposureResult] = field(default_factory=list)
    #: probability histograms per region (detectors that return probabilities only)
    sweep: ThresholdSweep | None = None
    #: the detector's probability threshold (None for binary detectors)
    threshold: float | None = None

    def pooled(self, region: str) -> Counts:
        """TP/FP/FN of ``region`` summed over every exposure."""
        return sum((e.counts[region] for e in self.exposures), Counts())

    def scores(self, region: str) -> ScoreSet:
        """The pooled scores of ``region`` (the figure every floor is checked against)."""
        return ScoreSet.of(self.pooled(region))

    @property
    def seconds(self) -> float:
        return float(sum(e.seconds for e in self.exposures))

    def to_record(self) -> dict:
        """A JSON-able copy without the masks (how pytest-xdist workers report back)."""
        return {"detector": self.detector, "version": self.version, "dataset": self.dataset,
                "regions": list(self.regions), "exposures": [
                    {"group": e.group, "exposure": e.exposure, "seconds": e.seconds,
                     "cr_fraction": e.cr_fraction,
                     "counts": {r: c.as_dict() for r, c in e.counts.items()}}
                    for e in self.exposures],
                "threshold": self.threshold,
                "sweep": self.sweep.to_record() if self.sweep is not None else None}

    @classmethod
    def from_record(cls, record: dict) -> "Evaluation":
        ev = cls(record["detector"], record["version"], record["dataset"], record["regions"])
        for e in record["exposures"]:
            ev.exposures.append(ExposureResult(
                e["group"], e["exposure"], {r: Counts(**c) for r, c in e["counts"].items()},
                None, e["seconds"], e.get("cr_fraction", float("nan"))))
        ev.threshold = record.get("threshold")
        if record.get("sweep"):
            ev.sweep = ThresholdSweep.from_record(record["sweep"])
        return ev

    def score_rows(self) -> list[dict]:
        """Results-file rows: pooled (exposure null) first, then per exposure and region."""
        head = {"detector": self.detector, "dataset": self.dataset}
        rows = [{**head, "group": None, "exposure": None, "region": region,
                 **self.scores(region).to_record()} for region in self.regions]
        for e in self.exposures:
            rows.extend({**head, "group": e.group, "exposure": e.exposure, "region": region,
                         **ScoreSet.of(e.counts[region]).to_record()} for region in self.regions)
        return rows


def run_detector(detector, exposure: Exposure, ignore: np.ndarray, *,
                 spec: str | None = None) -> Prediction:
    """Run ``detector`` on one exposure and normalise its answer to a Prediction."""
    raw = detector.detect(exposure.sci, ignore, exposure)
    return as_prediction(raw, threshold=getattr(detector, "threshold", None),
                         shape=exposure.shape, detector=spec or detector.name)


def evaluate(detector, prepared: PreparedDataset, *, spec: str | None = None,
             on_exposure: Callable[[PreparedExposure, Prediction], None] | None = None
             ) -> Evaluation:
    """Score ``detector`` on every exposure of ``prepared``.

    For a detector that returns probabilities, the per-region probability histograms of
    :class:`~pytest_crbench.science.sweeps.ThresholdSweep` are accumulated in the same
    pass (``Evaluation.sweep``); the probability maps themselves are not kept.

    ``on_exposure(prepared_exposure, prediction)`` is called after each exposure (while
    the detector's cleaned image is still in memory) for analyses beyond pixel scores.
    """
    spec = spec or detector.name
    result = Evaluation(detector=spec, version=str(getattr(detector, "version", "")),
                        dataset=prepared.dataset.name, regions=prepared.regions,
                        threshold=getattr(detector, "threshold", None))
    for pe in prepared.exposures:
        t0 = time.perf_counter()
        pred = run_detector(detector, pe.exposure, pe.ignore, spec=spec)
        seconds = time.perf_counter() - t0
        regions = regions_from_map(pe.rmap, prepared.ks)
        counts = {name: confusion(pred.mask, pe.crmask, pe.ignore, region)
                  for name, region in regions.items()}
        result.exposures.append(ExposureResult(pe.group.name, pe.exposure.name, counts,
                                               pred.mask, seconds, pe.cr_fraction))
        if pred.probability is not None:  # threshold sweep: counts only, in the same pass
            if result.sweep is None:
                result.sweep = ThresholdSweep(prepared.ks)
            result.sweep.add(pred.probability, pe.crmask, pe.ignore, pe.rmap)
        if on_exposure is not None:
            on_exposure(pe, pred)
    return result
