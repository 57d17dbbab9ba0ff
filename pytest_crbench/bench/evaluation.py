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
from pytest_crbench.science.reference import ReferenceConfig, audit_exposure, reference_for
from pytest_crbench.science.regions import background, region_map, region_names, regions_from_map


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


def prepare_exposure(group: Group, i: int, ks, ref_config: ReferenceConfig | None = None
                     ) -> tuple[PreparedExposure, dict | None]:
    """Reference, star-region map and reference-audit row (None without truth) of
    exposure ``i`` of ``group``: what every detector shares, computed once per exposure."""
    exp = group.exposures[i]
    clean, crmask, ignore = reference_for(group, i, ref_config)
    audit = audit_exposure(group.name, exp, crmask, ignore)
    bkg = background(clean, ignore)
    rmap = region_map(clean, ignore, ks, bkg=bkg)
    return PreparedExposure(group, exp, clean, crmask, ignore, rmap, bkg.rms), audit


def prepare(dataset: Dataset, ks, ref_config: ReferenceConfig | None = None) -> PreparedDataset:
    """References, region maps and the reference audit of every group of ``dataset``."""
    t0 = time.perf_counter()
    prepared, audit = [], []
    for group in dataset.groups:
        for i in range(len(group.exposures)):
            pe, row = prepare_exposure(group, i, ks, ref_config)
            prepared.append(pe)
            if row is not None:
                audit.append(row)
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
                    for e in self.exposures]}

    @classmethod
    def from_record(cls, record: dict) -> "Evaluation":
        ev = cls(record["detector"], record["version"], record["dataset"], record["regions"])
        for e in record["exposures"]:
            ev.exposures.append(ExposureResult(
                e["group"], e["exposure"], {r: Counts(**c) for r, c in e["counts"].items()},
                None, e["seconds"], e.get("cr_fraction", float("nan"))))
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

    ``on_exposure(prepared_exposure, prediction)`` is called after each exposure (while
    the detector's cleaned image is still in memory) for analyses beyond pixel scores.
    """
    spec = spec or detector.name
    result = Evaluation(detector=spec, version=str(getattr(detector, "version", "")),
                        dataset=prepared.dataset.name, regions=prepared.regions)
    for pe in prepared.exposures:
        er, pred = score_exposure(detector, pe, prepared.ks, spec=spec)
        result.exposures.append(er)
        if on_exposure is not None:
            on_exposure(pe, pred)
    return result


def score_exposure(detector, pe: PreparedExposure, ks, *, spec: str | None = None
                   ) -> tuple[ExposureResult, Prediction]:
    """Run ``detector`` on one prepared exposure and count TP/FP/FN in every region.

    The one per-exposure step of a serial and of a distributed run; the seconds are
    the detector's alone (GPU-synchronised when the detector can wait for its device).
    """
    from pytest_crbench.bench.timing import synced_timer

    t0 = synced_timer()
    pred = run_detector(detector, pe.exposure, pe.ignore, spec=spec)
    sync = getattr(detector, "synchronize", None)
    if sync is not None:
        sync()
    seconds = synced_timer() - t0
    regions = regions_from_map(pe.rmap, ks)
    counts = {name: confusion(pred.mask, pe.crmask, pe.ignore, region)
              for name, region in regions.items()}
    return ExposureResult(pe.group.name, pe.exposure.name, counts, pred.mask, seconds,
                          pe.cr_fraction), pred
