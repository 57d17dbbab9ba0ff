"""Gate checks: one small class per kind of assertion the standard suite makes.

Every check is a frozen dataclass (hashable: it is also the key of its limit in the
floors dict) with

* :meth:`Check.node_name`: the item name below ``crbench`` (``<det>::<dataset>::…``);
* :attr:`Check.properties`: the ``user_properties`` of its test item (JUnit XML);
* :meth:`Check.check`: the :class:`Outcome` against a run (anything with
  ``evaluation()``, ``analysis()``, ``smoke()`` and ``floors``, see :class:`CheckRun`),
  with the failure message already written;
* :meth:`Check.observe` and :meth:`Check.limit_from_observed` for checks with a limit
  (``has_limit``): how ``--crbench-generate-floors`` writes a floor from a run.

The kinds:

* :class:`PixelFloorCheck` ``crbench::<det>::<dataset>::<region>::<metric>``: the pooled
  pixel score reaches its floor;
* :class:`PhotometryCheck` ``crbench::<det>::<dataset>::photometry::<bin>::<limit>``:
  the photometric fraction respects its floor (``min_*``) or ceiling (``max_*``);
* :class:`StabilityCheck` ``crbench::<det>::<dataset>::stability::<f1|f2|rms>``: no group
  outside the leave-one-out prediction interval of the others (skipped with < 3 groups);
* :class:`SmokeCheck` ``crbench::<det>::<dataset>::smoke``: on a smoke-only dataset the
  detector runs on every exposure.

Adding a kind is one class here, listed in :data:`SCORED_KINDS` (or
:data:`SMOKE_KINDS`) with a :meth:`Check.for_pair` that names its instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pytest_crbench.bench.records import STABILITY_QUANTITIES
from pytest_crbench.errors import CRBenchError

__all__ = ["FloorFailure", "StabilityFailure", "Outcome", "CheckRun", "Check",
           "PixelFloorCheck", "PhotometryCheck", "StabilityCheck", "SmokeCheck",
           "PHOTOMETRY_METRICS", "PHOTOMETRY_BINS", "STABILITY_QUANTITIES", "SCORED_KINDS",
           "SMOKE_KINDS", "checks_for", "floor_from_observed", "ceiling_from_observed"]


class FloorFailure(AssertionError):
    """A score is below its floor (above its ceiling), or undefined where a limit is set."""


class StabilityFailure(AssertionError):
    """A group lies outside the stability band of the other groups."""


#: photometric limit keys → (fraction of a PhotometryBlock, "min" | "max")
PHOTOMETRY_METRICS: dict[str, tuple[str, str]] = {
    "max_anomalous": ("anomalous", "max"),
    "min_inside_97_103": ("inside_97_103", "min"),
    "max_outside_90_110": ("outside_90_110", "max"),
}
#: size-bin labels of the photometric checks (PhotometryConfig's default bins)
PHOTOMETRY_BINS = ("16-50", "50-200", "200-400")


def floor_from_observed(value: float, margin: float) -> float:
    """Observed value minus ``margin``, rounded down to 3 decimals, clipped at 0."""
    return max(0.0, math.floor((value - margin) * 1000 + 1e-9) / 1000)


def ceiling_from_observed(value: float, margin: float) -> float:
    """Observed value plus ``margin``, rounded up to 3 decimals, clipped at 1."""
    return min(1.0, math.ceil((value + margin) * 1000 - 1e-9) / 1000)


@dataclass
class Outcome:
    """What one check found: the value, its limit, pass/fail and the failure text."""

    check: "Check"
    value: float | None
    limit: float | None
    passed: bool
    reason: str | None = None  # why the value is undefined
    message: str | None = None  # failure text (None when passed)
    skip: str | None = None  # the check cannot assert anything (e.g. < 3 groups)


class CheckRun(Protocol):
    """What a check reads: the run's lazily computed results and its floors."""

    floors: dict

    def evaluation(self, spec: str, dataset: str) -> Any: ...

    def analysis(self, spec: str, dataset: str) -> Any: ...

    def smoke(self, spec: str, dataset: str) -> Any: ...


class Check:
    """Base of the gate checks (subclasses are frozen dataclasses with ``detector`` and
    ``dataset`` first)."""

    detector: str
    dataset: str
    #: the check has a floor/ceiling in the floors file (and one is generated from a run)
    has_limit: ClassVar[bool] = False
    #: the assertion error raised when the check fails
    failure: ClassVar[type[AssertionError]] = FloorFailure

    @classmethod
    def for_pair(cls, detector: str, dataset: str, settings) -> list["Check"]:
        """Every check of this kind for one (detector, dataset) under ``settings``."""
        raise NotImplementedError

    def node_name(self) -> str:
        raise NotImplementedError

    @property
    def properties(self) -> list[tuple[str, Any]]:
        return [("detector", self.detector), ("dataset", self.dataset)]

    def check(self, run: CheckRun) -> Outcome:
        raise NotImplementedError

    def observe(self, evaluation, analysis) -> float | None:
        """The observed value of the check in finished results (None: undefined)."""
        return None

    def limit_from_observed(self, value: float, margin: float) -> float:
        return floor_from_observed(value, margin)

    def floor_table(self) -> tuple[str, ...]:
        """Where the limit sits in the floors file, below ``floors.<det>.<dataset>``
        (the key inside that table is ``self.metric``)."""
        raise NotImplementedError(f"{type(self).__name__} has no limit")


@dataclass(frozen=True)
class PixelFloorCheck(Check):
    """A pooled pixel score of one star region reaches its floor."""

    detector: str
    dataset: str
    region: str
    metric: str
    has_limit: ClassVar[bool] = True

    @classmethod
    def for_pair(cls, detector, dataset, settings) -> list[Check]:
        from pytest_crbench.science.metrics import METRICS
        from pytest_crbench.science.regions import region_names

        return [cls(detector, dataset, region, metric)
                for region in region_names(settings.k) for metric in METRICS]

    def __str__(self) -> str:
        return f"{self.detector} / {self.dataset} / {self.region} / {self.metric}"

    def node_name(self) -> str:
        return f"{self.detector}::{self.dataset}::{self.region}::{self.metric}"

    @property
    def properties(self):
        return super().properties + [("region", self.region), ("metric", self.metric)]

    def floor_table(self) -> tuple[str, ...]:
        return (self.region,)

    def observe(self, evaluation, analysis) -> float | None:
        if evaluation is None or self.region not in evaluation.regions:
            return None
        return evaluation.scores(self.region).metric(self.metric).value

    def check(self, run: CheckRun) -> Outcome:
        score = run.evaluation(self.detector, self.dataset).scores(self.region).metric(
            self.metric)
        floor = run.floors.get(self)
        if score.value is None:
            return Outcome(self, None, floor, floor is None, score.reason,
                           message=None if floor is None else
                           f"{self}: score is undefined ({score.reason}) but has floor "
                           f"{floor:.3f}")
        if floor is None or score.value >= floor:
            return Outcome(self, score.value, floor, True)
        return Outcome(self, score.value, floor, False,
                       message=f"{self}: observed {score.value:.4f} is below floor "
                               f"{floor:.3f} (short by {floor - score.value:.4f})")


@dataclass(frozen=True)
class PhotometryCheck(Check):
    """A photometric fraction of all stars (``bin="all"``) or one size bin respects its
    limit: a ceiling for ``max_*`` metrics, a floor for ``min_*``."""

    detector: str
    dataset: str
    bin: str
    metric: str
    has_limit: ClassVar[bool] = True

    @classmethod
    def for_pair(cls, detector, dataset, settings) -> list[Check]:
        return [cls(detector, dataset, size_bin, metric)
                for size_bin in ("all",) + PHOTOMETRY_BINS for metric in PHOTOMETRY_METRICS]

    @property
    def kind(self) -> str:
        """``"max"`` (ceiling) or ``"min"`` (floor)."""
        return PHOTOMETRY_METRICS[self.metric][1]

    @property
    def field(self) -> str:
        """The fraction of the photometry block this limit applies to."""
        return PHOTOMETRY_METRICS[self.metric][0]

    def __str__(self) -> str:
        size = "all stars" if self.bin == "all" else f"{self.bin} px stars"
        return f"{self.detector} / {self.dataset} / photometry {size} / {self.metric}"

    def node_name(self) -> str:
        return f"{self.detector}::{self.dataset}::photometry::{self.bin}::{self.metric}"

    @property
    def properties(self):
        return super().properties + [("size_bin", self.bin), ("metric", self.metric)]

    def floor_table(self) -> tuple[str, ...]:
        return ("photometry",) if self.bin == "all" else ("photometry", self.bin)

    def observe(self, evaluation, analysis) -> float | None:
        block = None if analysis is None else analysis.summary_block(self.bin)
        return None if block is None else block.fraction(self.field)

    def limit_from_observed(self, value: float, margin: float) -> float:
        return ceiling_from_observed(value, margin) if self.kind == "max" \
            else floor_from_observed(value, margin)

    def check(self, run: CheckRun) -> Outcome:
        a = run.analysis(self.detector, self.dataset)
        if a.error:
            raise CRBenchError(a.error)
        limit = run.floors.get(self)
        block = a.summary_block(self.bin)
        value = None if block is None else block.fraction(self.field)
        if value is None:
            reason = (block and block.reason(self.field)) or f"no {self.bin} px stars"
            return Outcome(self, None, limit, limit is None, reason,
                           message=None if limit is None else
                           f"{self}: fraction is undefined ({reason}) but has limit "
                           f"{limit:.3f}")
        if limit is None:
            return Outcome(self, value, None, True)
        n = block.n_contaminated
        if self.kind == "max":
            passed = value <= limit
            msg = (f"{self}: observed {value:.4f} is above ceiling {limit:.3f} "
                   f"(over by {value - limit:.4f}; {n} contaminated stars)")
        else:
            passed = value >= limit
            msg = (f"{self}: observed {value:.4f} is below floor {limit:.3f} "
                   f"(short by {limit - value:.4f}; {n} contaminated stars)")
        return Outcome(self, value, limit, passed, message=None if passed else msg)


@dataclass(frozen=True)
class StabilityCheck(Check):
    """No group outside the 3σ-equivalent leave-one-out prediction interval of
    ``quantity`` over the other groups (no floor)."""

    detector: str
    dataset: str
    quantity: str  # f1, f2 or rms
    failure: ClassVar[type[AssertionError]] = StabilityFailure

    @classmethod
    def for_pair(cls, detector, dataset, settings) -> list[Check]:
        return [cls(detector, dataset, q) for q in STABILITY_QUANTITIES]

    def __str__(self) -> str:
        return f"{self.detector} / {self.dataset} / stability / {self.quantity}"

    def node_name(self) -> str:
        return f"{self.detector}::{self.dataset}::stability::{self.quantity}"

    @property
    def properties(self):
        return super().properties + [("quantity", self.quantity)]

    def _format(self, v: float) -> str:
        return f"{v:.4f}" if self.quantity == "rms" else f"{100 * v:.1f} %"

    def check(self, run: CheckRun) -> Outcome:
        st = run.analysis(self.detector, self.dataset).stability
        band = st.band(self.quantity)
        if band.reason:
            return Outcome(self, None, None, True, band.reason,
                           skip=f"{self}: not assessed: {band.reason}")
        if not band.outliers:
            return Outcome(self, None, None, True)
        loo = st.leave_one_out(self.quantity)
        fmt = self._format
        parts = []
        for g in band.outliers:
            b = loo.get(g)
            parts.append(g if b is None else
                         f"{g} = {fmt(b.value)} outside {fmt(b.mean)} ± {b.factor:.2f}·"
                         f"{fmt(b.std)} = [{fmt(b.lower)}, {fmt(b.upper)}]")
        msg = (f"{self}: {len(band.outliers)} group(s) outside the {st.nsigma:g}σ-equivalent "
               f"prediction interval of the other groups (region {st.region}, "
               f"{band.n} groups): " + "; ".join(parts))
        return Outcome(self, None, None, False, message=msg)


@dataclass(frozen=True)
class SmokeCheck(Check):
    """A smoke-only dataset (no reference possible): the detector runs on every exposure
    and returns a valid mask (no floor)."""

    detector: str
    dataset: str

    @classmethod
    def for_pair(cls, detector, dataset, settings) -> list[Check]:
        return [cls(detector, dataset)]

    def __str__(self) -> str:
        return f"{self.detector} / {self.dataset} / smoke"

    def node_name(self) -> str:
        return f"{self.detector}::{self.dataset}::smoke"

    def check(self, run: CheckRun) -> Outcome:
        result = run.smoke(self.detector, self.dataset)
        passed = bool(result.exposures)
        return Outcome(self, None, None, passed,
                       message=None if passed else f"{self}: the dataset has no exposure")


#: check kinds of a dataset with references, in item order
SCORED_KINDS: tuple[type[Check], ...] = (PixelFloorCheck, PhotometryCheck, StabilityCheck)
#: check kinds of a smoke-only dataset
SMOKE_KINDS: tuple[type[Check], ...] = (SmokeCheck,)


def checks_for(settings, is_scored) -> list[Check]:
    """Every check of a run, dataset by dataset (``is_scored(name)``: the dataset has
    references; else only the smoke checks run)."""
    out: list[Check] = []
    for ds in settings.dataset:
        scored = is_scored(ds)
        for det in settings.model:
            for kind in (SCORED_KINDS if scored else SMOKE_KINDS):
                out += kind.for_pair(det, ds, settings)
    return out
