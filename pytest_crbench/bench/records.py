"""Typed result records of a benchmark run (the in-memory model of the results file).

Each record is a small dataclass with ``to_record()`` (the JSON-able dict written into
the results file, ``crbench-results/2``) and ``from_record()`` (how pytest-xdist workers
send results back to the controller).  The science functions return plain dicts of the
same shape (:func:`~pytest_crbench.science.photometry_summary.photometry_summary`,
:func:`~pytest_crbench.science.density.density_relation`,
:func:`~pytest_crbench.science.stability.group_stability`,
:func:`~pytest_crbench.science.reference.audit_reference`); :mod:`pytest_crbench.bench`
turns them into these records once, and every consumer (checks, JSON writer, terminal
table, report) reads attributes, never string keys.

Non-finite numbers are kept as floats in memory; :func:`jsonable` writes them as null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from pytest_crbench.science.density import FitResult

__all__ = [
    "jsonable", "PhotometryBlock", "PhotometrySummary", "DensityQuantity",
    "ExposureLimit", "DensityAnalysis", "GroupScore", "LeaveOneOut", "StabilityBand",
    "StabilityAnalysis", "AuditRow", "DatasetSummary", "SmokeExposure", "SmokeResult",
    "Note", "GalleryEntry", "STABILITY_QUANTITIES", "BLOCK_FRACTIONS", "FlatRecord", "fit_to_record", "fit_from_record",
]


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers and NaN/inf as None (recursively)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and type(obj).__module__ == "numpy":
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _plain(cls, record: Mapping[str, Any]):
    """``cls(**record)`` restricted to the dataclass fields of ``cls``."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in record.items() if k in names})


class FlatRecord:
    """A record whose fields are all JSON values: its record is its fields, in order."""

    def to_record(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]):
        return _plain(cls, record)


# --------------------------------------------------------------------------- photometry

#: fractions of a photometry block, in the order of the results file
BLOCK_FRACTIONS = ("contaminated", "anomalous", "anomalous_of_all", "inside_97_103",
                   "outside_90_110", "inside_97_103_of_all", "outside_90_110_of_all")


@dataclass(frozen=True)
class PhotometryBlock:
    """Photometric figures of one star population (all stars or one size bin).

    ``anomalous``, ``inside_97_103`` and ``outside_90_110`` are over the contaminated
    stars (the paper's population), the ``*_of_all`` fractions over all measured stars.
    An undefined fraction is None and :meth:`reason` says why.
    """

    n: int
    n_contaminated: int
    n_anomalous: int
    n_anomalous_contaminated: int
    contaminated: float | None
    anomalous: float | None
    anomalous_of_all: float | None
    inside_97_103: float | None
    outside_90_110: float | None
    inside_97_103_of_all: float | None
    outside_90_110_of_all: float | None
    reasons: dict[str, str] = field(default_factory=dict)

    def fraction(self, name: str) -> float | None:
        if name not in BLOCK_FRACTIONS:
            raise KeyError(f"unknown photometric fraction {name!r}")
        return getattr(self, name)

    def reason(self, name: str) -> str | None:
        return self.reasons.get(name)

    def to_record(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["reasons"] = dict(self.reasons)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "PhotometryBlock":
        return _plain(cls, {**record, "reasons": dict(record.get("reasons") or {})})


@dataclass(frozen=True)
class PhotometrySummary:
    """:func:`~pytest_crbench.science.photometry_summary.photometry_summary` as a record."""

    population: str
    overall: PhotometryBlock
    by_size: dict[str, PhotometryBlock]

    def block(self, size_bin: str = "all") -> PhotometryBlock | None:
        """The block of ``size_bin`` (``"all"`` or a bin label), None for an unknown bin."""
        return self.overall if size_bin == "all" else self.by_size.get(size_bin)

    def blocks(self) -> list[tuple[str, PhotometryBlock]]:
        """``("all", overall)`` then every size bin, in order."""
        return [("all", self.overall)] + list(self.by_size.items())

    def to_record(self) -> dict[str, Any]:
        return {"population": self.population, "overall": self.overall.to_record(),
                "by_size": {k: b.to_record() for k, b in self.by_size.items()}}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "PhotometrySummary":
        return cls(record.get("population", ""), PhotometryBlock.from_record(record["overall"]),
                   {k: PhotometryBlock.from_record(b) for k, b in record["by_size"].items()})


# --------------------------------------------------------------------------- density

def fit_to_record(fit: FitResult | None) -> dict[str, Any] | None:
    """A fit as its JSON dict (non-finite numbers → None)."""
    return None if fit is None else jsonable(fit.as_dict())


def fit_from_record(record: Mapping[str, Any] | None) -> FitResult | None:
    """A :class:`~pytest_crbench.science.density.FitResult` back from its JSON dict."""
    if record is None:
        return None
    d = dict(record)
    for k in ("x_min", "x_max"):
        if d.get(k) is None:
            d[k] = math.nan
    return FitResult(**d)


@dataclass(frozen=True)
class DensityQuantity:
    """One y-quantity against the CR pixel fraction: its points and its fitted line."""

    x: list[float]
    y: list[float]
    labels: list[str]
    n_stars: list[int]
    n_skipped: int
    fit: FitResult | None
    reason: str | None

    def to_record(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y), "labels": list(self.labels),
                "n_stars": list(self.n_stars), "n_skipped": self.n_skipped,
                "reason": self.reason, "fit": fit_to_record(self.fit)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "DensityQuantity":
        fit = record.get("fit")
        if fit is not None and not isinstance(fit, FitResult):
            fit = fit_from_record(fit)
        return cls(list(record["x"]), list(record["y"]), list(record["labels"]),
                   list(record["n_stars"]), int(record["n_skipped"]), fit, record.get("reason"))


@dataclass(frozen=True)
class ExposureLimit(FlatRecord):
    """The longest exposure (s) keeping a fitted fraction at or below ``level``."""

    quantity: str
    level: float
    seconds: float | None  # None: the relation sets no limit (or cannot be used)
    note: str | None


@dataclass(frozen=True)
class DensityAnalysis:
    """Method.md section 5 for one detector on one dataset."""

    quantities: dict[str, DensityQuantity]
    cr_fraction_per_second: float | None
    anomalous_level: float
    exposure_limits: list[ExposureLimit]

    def to_record(self) -> dict[str, Any]:
        return {"quantities": {q: e.to_record() for q, e in self.quantities.items()},
                "cr_fraction_per_second": self.cr_fraction_per_second,
                "anomalous_level": self.anomalous_level,
                "exposure_limits": [lim.to_record() for lim in self.exposure_limits]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "DensityAnalysis":
        return cls({q: DensityQuantity.from_record(e) for q, e in record["quantities"].items()},
                   record["cr_fraction_per_second"], record["anomalous_level"],
                   [ExposureLimit.from_record(e) for e in record["exposure_limits"]])


# --------------------------------------------------------------------------- stability

@dataclass(frozen=True)
class GroupScore(FlatRecord):
    """One group (observation date): F1/F2 on stars and the trimmed RMS of flux ratios."""

    group: str
    date: str
    tp: int
    fp: int
    fn: int
    f1: float | None
    f2: float | None
    rms: float | None
    n_ratios: int
    reasons: dict[str, str] = field(default_factory=dict)

    def value(self, quantity: str) -> float | None:
        return {"f1": self.f1, "f2": self.f2, "rms": self.rms}[quantity]


@dataclass(frozen=True)
class LeaveOneOut(FlatRecord):
    """A group's value and the prediction interval of the *other* groups."""

    value: float
    mean: float
    std: float
    factor: float
    lower: float
    upper: float


@dataclass(frozen=True)
class StabilityBand:
    """The band of one quantity over groups and the groups outside it."""

    n: int
    mean: float | None
    std: float | None
    lower: float | None
    upper: float | None
    outliers: list[str]
    reason: str | None
    coverage: float | None = None  # exclude_self only
    per_group: dict[str, LeaveOneOut] | None = None  # exclude_self only

    def to_record(self) -> dict[str, Any]:
        out = {"n": self.n, "mean": self.mean, "std": self.std, "lower": self.lower,
               "upper": self.upper, "outliers": list(self.outliers), "reason": self.reason}
        if self.coverage is not None:
            out["coverage"] = self.coverage
        if self.per_group is not None:
            out["per_group"] = {g: b.to_record() for g, b in self.per_group.items()}
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "StabilityBand":
        per_group = record.get("per_group")
        return cls(record["n"], record["mean"], record["std"], record["lower"],
                   record["upper"], list(record["outliers"]), record["reason"],
                   record.get("coverage"),
                   None if per_group is None else
                   {g: LeaveOneOut.from_record(b) for g, b in per_group.items()})


STABILITY_QUANTITIES = ("f1", "f2", "rms")


@dataclass(frozen=True)
class StabilityAnalysis:
    """Method.md section 6 for one detector on one dataset (``region``: the star region
    whose F1/F2 are tracked)."""

    groups: list[GroupScore]
    nsigma: float
    trim: float
    center: float | None
    exclude_self: bool
    f1: StabilityBand
    f2: StabilityBand
    rms: StabilityBand
    region: str

    def band(self, quantity: str) -> StabilityBand:
        if quantity not in STABILITY_QUANTITIES:
            raise KeyError(f"unknown stability quantity {quantity!r}")
        return getattr(self, quantity)

    def leave_one_out(self, quantity: str) -> dict[str, LeaveOneOut]:
        return self.band(quantity).per_group or {}

    @property
    def reason(self) -> str | None:
        """The first reason a band could not be assessed, if any."""
        return next((self.band(q).reason for q in STABILITY_QUANTITIES
                     if self.band(q).reason), None)

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"groups": [g.to_record() for g in self.groups],
                               "nsigma": self.nsigma, "trim": self.trim,
                               "center": self.center, "exclude_self": self.exclude_self}
        for q in STABILITY_QUANTITIES:
            out[q] = self.band(q).to_record()
        out["region"] = self.region
        out["leave_one_out"] = {q: {g: b.to_record() for g, b in self.leave_one_out(q).items()}
                                for q in STABILITY_QUANTITIES}
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "StabilityAnalysis":
        return cls([GroupScore.from_record(g) for g in record["groups"]], record["nsigma"],
                   record["trim"], record["center"], record["exclude_self"],
                   *(StabilityBand.from_record(record[q]) for q in STABILITY_QUANTITIES),
                   region=record["region"])


# --------------------------------------------------------------------------- datasets

@dataclass(frozen=True)
class AuditRow(FlatRecord):
    """The reference CR mask of one exposure and region scored against the simulation
    truth (:func:`pytest_crbench.science.truth.audit_reference`): ``tp``/``fp``/``fn``
    against every pixel with injected charge, ``tp_significant``/``fn_significant``
    against the true cosmic-ray pixels (charge > ``truth``'s n sigma)."""

    group: str
    exposure: str
    region: str
    truth: str
    tp: int
    fp: int
    fn: int
    tp_significant: int
    fn_significant: int
    precision: float | None
    recall: float | None
    recall_significant: float | None
    truth_fraction: float | None


@dataclass(frozen=True)
class DatasetSummary:
    """What the results file keeps of a prepared dataset."""

    name: str
    version: str
    provenance: dict[str, Any]
    audit: list[AuditRow]
    ks: list[int]
    #: legal but degenerate data (e.g. an exposure mostly ignored), shown in the summary
    notes: list[str] = field(default_factory=list)
    #: the reference rule and its parameters (ReferenceConfig.provenance())
    reference: dict[str, Any] = field(default_factory=dict)
    #: the truth threshold, where the dataset carries CRTRUTH (else None)
    truth_snr: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "provenance": self.provenance,
                "audit": [a.to_record() for a in self.audit], "ks": list(self.ks),
                "notes": list(self.notes),
                "reference": self.reference, "truth_snr": self.truth_snr}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "DatasetSummary":
        return cls(record["name"], record["version"], record["provenance"],
                   [AuditRow.from_record(a) for a in record["audit"]], list(record["ks"]),
                   list(record.get("notes", [])),
                   record.get("reference", {}), record.get("truth_snr"))


@dataclass(frozen=True)
class SmokeExposure(FlatRecord):
    group: str
    exposure: str
    shape: list[int]
    flagged_fraction: float
    seconds: float


@dataclass(frozen=True)
class SmokeResult:
    """A detector run on a smoke-only dataset (single exposures: never scored)."""

    detector: str
    version: str
    dataset: str
    exposures: list[SmokeExposure]
    note: str | None

    def to_record(self) -> dict[str, Any]:
        return {"detector": self.detector, "version": self.version, "dataset": self.dataset,
                "exposures": [e.to_record() for e in self.exposures], "note": self.note}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "SmokeResult":
        return cls(record["detector"], record["version"], record["dataset"],
                   [SmokeExposure.from_record(e) for e in record["exposures"]], record.get("note"))


@dataclass(frozen=True)
class Note(FlatRecord):
    """A remark about one (detector, dataset), e.g. data outside a model's domain."""

    detector: str
    dataset: str
    note: str


@dataclass(frozen=True)
class GalleryEntry(FlatRecord):
    """One star of the failure gallery: where it is, its ratios and its five stamps."""

    group: str
    exposure: str
    star_id: int
    x: float
    y: float
    radius: float
    area: int
    ratio_cleaned: float | None
    ratio_original: float | None
    stamps: dict[str, Any]  # stamp key → 2-D list (see science.gallery.STAMP_KEYS)
