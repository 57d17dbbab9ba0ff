"""Run a detector over a dataset and count TP/FP/FN per exposure and star region.

:func:`prepare` builds what every detector shares for a dataset — the reference of each
group (by the configured rule), the star-region map of each exposure, the truth classes
of exposures with ``CRTRUTH`` and the per-region reference audit — once.
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
from pytest_crbench.errors import CRBenchDetectorError, CRBenchError
from pytest_crbench.science.metrics import Counts, ScoreSet, region_tables
from pytest_crbench.science.exposures import Dataset, Exposure, Group
from pytest_crbench.science.reference import ReferenceConfig, build_reference, reference_for
from pytest_crbench.science.truth import (
    DEFAULT_TRUTH_SNR, TruthClasses, audit_counts, truth_classes)
from pytest_crbench.science.background import Background, background
from pytest_crbench.science.regions import region_map, region_names
from pytest_crbench.science.sweeps import ThresholdSweep

__all__ = ["PreparedExposure", "PreparedDataset", "prepare", "prepare_exposure",
           "ExposureResult", "Evaluation", "run_detector", "evaluate", "score_exposure",
           "exposure_sweep", "MOSTLY_IGNORED"]


@dataclass
class PreparedExposure:
    group: Group
    exposure: Exposure
    clean: np.ndarray
    crmask: np.ndarray
    ignore: np.ndarray
    rmap: np.ndarray
    background_rms: float
    truth: TruthClasses | None = None  # from CRTRUTH (simulated data), else None
    #: SEP background of ``clean`` (ignore masked, the default mesh), shared by the
    #: region map, star finding and photometry; None when every pixel is ignored
    background: Background | None = None

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
    #: legal but degenerate data, said in the summary and the JSON (see :func:`prepare`)
    notes: list[str] = field(default_factory=list)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    truth_snr: float = DEFAULT_TRUTH_SNR

    @property
    def regions(self) -> list[str]:
        return region_names(self.ks)

    @property
    def truth_label(self) -> str | None:
        """How score rows name the truth (None: no exposure carries CRTRUTH)."""
        truth = next((pe.truth for pe in self.exposures if pe.truth is not None), None)
        return None if truth is None else truth.label()

    def summary(self) -> DatasetSummary:
        """What the results file needs of this dataset."""
        return DatasetSummary(self.dataset.name, self.dataset.version,
                              self.dataset.provenance,
                              [AuditRow.from_record(r) for r in self.audit], list(self.ks),
                              notes=list(self.notes),
                              reference=self.reference.provenance(),
                              truth_snr=self.truth_snr if self.truth_label else None)


#: An exposure with more than this fraction of its pixels ignored (DQ != 0, saturation
#: boxes) is legal but its scores rest on little of the image: a note says so.
MOSTLY_IGNORED = 0.5


def _finish_exposure(group: Group, exp: Exposure, clean: np.ndarray, crmask: np.ndarray,
                     ignore: np.ndarray, ks, truth_snr: float
                     ) -> tuple[PreparedExposure, str | None]:
    """Region map, truth classes and note of one exposure whose reference is known."""
    note = None
    frac = float(ignore.mean())
    if frac > MOSTLY_IGNORED:
        note = (f"{exp.source or exp.name}: {100 * frac:.0f} % of the pixels are ignored "
                f"(DQ != 0, or near a pixel above the saturation level "
                f"{exp.saturation:g} e-): its scores rest on the other "
                f"{100 * (1 - frac):.0f} %")
    bkg = None
    if ignore.all():  # nothing to score here (the note above says so): no region
        rmap, rms = np.zeros(clean.shape, np.int16), float("nan")
    else:
        bkg = background(clean, ignore)
        rmap, rms = region_map(clean, ignore, ks, bkg=bkg), bkg.rms
    pe = PreparedExposure(group, exp, clean, crmask, ignore, rmap, rms,
                          truth_classes(exp, truth_snr), bkg)
    return pe, note


def _audit_rows(pe: PreparedExposure, ks) -> list[dict]:
    """The per-region reference-audit rows of one exposure (as
    :func:`~pytest_crbench.science.truth.audit_reference`); none without truth."""
    if pe.truth is None:
        return []
    counts = audit_counts(pe.crmask, pe.ignore, pe.truth, pe.rmap, ks)
    return [{"group": pe.group.name, "exposure": pe.exposure.name, "region": name,
             "truth": pe.truth.label(), **c.as_dict()} for name, c in counts.items()]


def prepare_exposure(group: Group, i: int, ks, ref_config: ReferenceConfig | None = None,
                     truth_snr: float = DEFAULT_TRUTH_SNR
                     ) -> tuple[PreparedExposure, list[dict], str | None]:
    """Reference (strip-wise, :func:`~pytest_crbench.science.reference.reference_for`),
    star-region map, truth classes, per-region reference-audit rows (empty without
    truth) and the note of a mostly ignored exposure (or None) of exposure ``i`` of
    ``group``: what every detector shares, computed once per exposure.  The same
    records as :func:`prepare` gives for that exposure (a distributed run uses this)."""
    exp = group.exposures[i]
    clean, crmask, ignore = reference_for(group, i, ref_config or ReferenceConfig())
    pe, note = _finish_exposure(group, exp, clean, crmask, ignore, ks, truth_snr)
    return pe, _audit_rows(pe, ks), note


def prepare(dataset: Dataset, ks, ref_config: ReferenceConfig | None = None,
            truth_snr: float = DEFAULT_TRUTH_SNR) -> PreparedDataset:
    """References (by ``ref_config``'s rule), region maps, truth classes and the
    per-region reference audit of every group of ``dataset``.

    Degenerate data that would bias the references are refused by
    :func:`~pytest_crbench.science.exposures.check_levels`; an exposure that is mostly
    ignored gets a note (:data:`MOSTLY_IGNORED`).
    """
    t0 = time.perf_counter()
    ref_config = ref_config or ReferenceConfig()
    prepared, audit, notes = [], [], []
    for group in dataset.groups:
        ref = build_reference(group, ref_config)
        for exp, clean, crmask, ignore in zip(group.exposures, ref.clean, ref.crmask, ref.ignore):
            pe, note = _finish_exposure(group, exp, clean, crmask, ignore, ks, truth_snr)
            prepared.append(pe)
            audit.extend(_audit_rows(pe, ks))
            if note is not None:
                notes.append(note)
    return PreparedDataset(dataset, sorted(ks), prepared, audit, time.perf_counter() - t0,
                           notes=notes, reference=ref_config, truth_snr=truth_snr)


@dataclass
class ExposureResult:
    group: str
    exposure: str
    counts: dict[str, Counts]
    mask: np.ndarray | None
    seconds: float
    cr_fraction: float = float("nan")
    #: against the truth (exposures with CRTRUTH): counts per region, and the pixels of
    #: each region left out of both classes (faint injected charge)
    truth_counts: dict[str, Counts] | None = None
    excluded: dict[str, int] | None = None


#: What pixel scores are measured against: the reference masks or the simulation truth.
AGAINST = ("reference", "truth")


@dataclass
class Evaluation:
    """One detector on one prepared dataset.  ``truth`` names the truth the
    ``truth_counts`` of its exposures were scored against (None: no CRTRUTH)."""

    detector: str
    version: str
    dataset: str
    regions: list[str]
    exposures: list[ExposureResult] = field(default_factory=list)
    #: probability histograms per region (detectors that return probabilities only)
    sweep: ThresholdSweep | None = None
    #: the detector's probability threshold (None for binary detectors)
    threshold: float | None = None
    truth: str | None = None

    @property
    def has_truth(self) -> bool:
        return any(e.truth_counts is not None for e in self.exposures)

    def pooled(self, region: str, against: str = "reference") -> Counts:
        """TP/FP/FN of ``region`` summed over every exposure, against the reference or
        the truth (exposures without truth add nothing to the latter)."""
        if against == "truth":
            return sum((e.truth_counts[region] for e in self.exposures
                        if e.truth_counts is not None), Counts())
        return sum((e.counts[region] for e in self.exposures), Counts())

    def scores(self, region: str, against: str = "reference") -> ScoreSet:
        """The pooled scores of ``region`` (the figure every floor is checked against)."""
        return ScoreSet.of(self.pooled(region, against))

    def excluded(self, region: str) -> int:
        """Pixels of ``region`` left out of the truth classes, over every exposure."""
        return sum(e.excluded[region] for e in self.exposures if e.excluded is not None)

    @property
    def seconds(self) -> float:
        return float(sum(e.seconds for e in self.exposures))

    def to_record(self) -> dict:
        """A JSON-able copy without the masks (how pytest-xdist workers report back)."""
        return {"detector": self.detector, "version": self.version, "dataset": self.dataset,
                "regions": list(self.regions), "exposures": [
                    {"group": e.group, "exposure": e.exposure, "seconds": e.seconds,
                     "cr_fraction": e.cr_fraction,
                     "counts": {r: c.as_dict() for r, c in e.counts.items()},
                     "truth_counts": None if e.truth_counts is None else
                     {r: c.as_dict() for r, c in e.truth_counts.items()},
                     "excluded": e.excluded}
                    for e in self.exposures], "truth": self.truth,
                "threshold": self.threshold,
                "sweep": self.sweep.to_record() if self.sweep is not None else None}

    @classmethod
    def from_record(cls, record: dict) -> "Evaluation":
        ev = cls(record["detector"], record["version"], record["dataset"], record["regions"],
                 truth=record.get("truth"))
        for e in record["exposures"]:
            truth = e.get("truth_counts")
            ev.exposures.append(ExposureResult(
                e["group"], e["exposure"], {r: Counts(**c) for r, c in e["counts"].items()},
                None, e["seconds"], e.get("cr_fraction", float("nan")),
                None if truth is None else {r: Counts(**c) for r, c in truth.items()},
                e.get("excluded")))
        ev.threshold = record.get("threshold")
        if record.get("sweep"):
            ev.sweep = ThresholdSweep.from_record(record["sweep"])
        return ev

    def score_rows(self) -> list[dict]:
        """Results-file rows: pooled (exposure null) first, then per exposure and region;
        against the reference, then (where the exposures carry CRTRUTH) against the
        truth, with the truth named and the pixels left out of it counted."""
        head = {"detector": self.detector, "dataset": self.dataset}
        ref = {"against": "reference", "truth": None}
        rows = [{**head, "group": None, "exposure": None, "region": region, **ref,
                 **self.scores(region).to_record()} for region in self.regions]
        for e in self.exposures:
            rows.extend({**head, "group": e.group, "exposure": e.exposure, "region": region,
                         **ref, **ScoreSet.of(e.counts[region]).to_record()}
                        for region in self.regions)
        if not self.has_truth:
            return rows
        truth = {"against": "truth", "truth": self.truth}
        rows += [{**head, "group": None, "exposure": None, "region": region, **truth,
                  "excluded": self.excluded(region),
                  **self.scores(region, "truth").to_record()} for region in self.regions]
        for e in self.exposures:
            if e.truth_counts is not None:
                rows.extend({**head, "group": e.group, "exposure": e.exposure,
                             "region": region, **truth, "excluded": e.excluded[region],
                             **ScoreSet.of(e.truth_counts[region]).to_record()}
                            for region in self.regions)
        return rows


def run_detector(detector, exposure: Exposure, ignore: np.ndarray, *,
                 spec: str | None = None) -> Prediction:
    """Run ``detector`` on one exposure and normalise its answer to a Prediction.

    The boundary with the detector's code: whatever it raises (other than our own errors)
    becomes one :class:`CRBenchDetectorError` naming the detector and the exposure.
    """
    name = spec or detector.name
    where = exposure.source or exposure.name
    try:
        raw = detector.detect(exposure.sci, ignore, exposure)
    except CRBenchError:
        raise
    except Exception as exc:
        raise CRBenchDetectorError(
            f"detector {name!r} raised {type(exc).__name__} on {where}: {exc}") from exc
    return as_prediction(raw, threshold=getattr(detector, "threshold", None),
                         shape=exposure.shape, detector=name, where=where)


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
                        threshold=getattr(detector, "threshold", None),
                        truth=prepared.truth_label)
    for pe in prepared.exposures:
        er, pred = score_exposure(detector, pe, prepared.ks, spec=spec)
        result.exposures.append(er)
        sweep = exposure_sweep(pred, pe, prepared.ks)
        if sweep is not None:  # threshold sweep: counts only, in the same pass
            result.sweep = sweep if result.sweep is None else result.sweep + sweep
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
    # masks 0..3: the prediction, the reference mask, the true and the excluded pixels
    truth = [] if pe.truth is None else [pe.truth.crmask, pe.truth.excluded]
    tables = region_tables([pred.mask, pe.crmask, *truth], pe.ignore, pe.rmap, ks)
    counts = {name: t.confusion(0, 1) for name, t in tables.items()}
    truth_counts = excluded = None
    if pe.truth is not None:
        truth_counts = {name: t.confusion(0, 2, leave_out=3) for name, t in tables.items()}
        excluded = {name: t.count(3) for name, t in tables.items()}
    return ExposureResult(pe.group.name, pe.exposure.name, counts, pred.mask, seconds,
                          pe.cr_fraction, truth_counts, excluded), pred


def exposure_sweep(pred: Prediction, pe: PreparedExposure, ks) -> ThresholdSweep | None:
    """The threshold-sweep counts of one exposure (None for a detector without
    probabilities); :func:`evaluate` and a distributed run add them in exposure order."""
    if pred.probability is None:
        return None
    sweep = ThresholdSweep(sorted(ks))
    sweep.add(pred.probability, pe.crmask, pe.ignore, pe.rmap)
    return sweep
