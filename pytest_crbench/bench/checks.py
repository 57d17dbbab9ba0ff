"""Gate checks: one small class per kind of assertion the standard suite makes.

Every check is a frozen dataclass (hashable: it is also the key of its limit in the
floors dict) with

* :meth:`Check.node_name`: the item name below ``crbench`` (``<det>::<dataset>::…``);
* :attr:`Check.properties`: the ``user_properties`` of its test item (JUnit XML);
* :meth:`Check.check`: the :class:`Outcome` against a run (anything with
  ``evaluation()``, ``analysis()``, ``smoke()``, ``comparison()`` and ``limit()``, see
  :class:`CheckRun`), with the failure message already written.

Checks with a limit (``has_limit``) get theirs from the floors file;
``--crbench-generate-floors`` writes them from the bootstrap
(:mod:`pytest_crbench.bench.floor_bounds`).

The kinds:

* :class:`PixelFloorCheck` ``crbench::<det>::<dataset>::<region>::<metric>``: the pooled
  pixel score reaches its floor; against the simulation truth
  ``crbench::<det>::<dataset>::truth::<region>::<metric>``, an item only where the floors
  file names it (:attr:`Check.optional`);
* :class:`PhotometryCheck` ``crbench::<det>::<dataset>::photometry::<bin>::<limit>``:
  the photometric fraction respects its floor (``min_*``) or ceiling (``max_*``);
* :class:`StabilityCheck` ``crbench::<det>::<dataset>::stability::<f1|f2|rms>``: no group
  outside the leave-one-out prediction interval of the others (skipped with < 3 groups);
* :class:`SmokeCheck` ``crbench::<det>::<dataset>::smoke``: on a smoke-only dataset the
  detector runs on every exposure;
* :class:`NonInferiorityCheck`
  ``crbench::<det>::<dataset>::<region>::<metric>::vs::<baseline>`` (with
  ``--crbench-baseline``): the whole paired bootstrap interval of det − baseline does
  not lie below ``−max_drop``.

Adding a kind is one class here, listed in :data:`SCORED_KINDS` (or
:data:`SMOKE_KINDS`) with a :meth:`Check.for_pair` that names its instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pytest_crbench.bench.records import STABILITY_QUANTITIES
from pytest_crbench.errors import CRBenchError
from pytest_crbench.science.photometry import PhotometryConfig

__all__ = ["FloorFailure", "StabilityFailure", "NonInferiorityFailure", "Outcome", "CheckRun",
           "Check", "PixelFloorCheck", "PhotometryCheck", "StabilityCheck", "SmokeCheck",
           "NonInferiorityCheck", "PHOTOMETRY_METRICS", "PHOTOMETRY_BINS",
           "STABILITY_QUANTITIES", "SCORED_KINDS", "SMOKE_KINDS", "checks_for"]


class FloorFailure(AssertionError):
    """A score is below its floor (above its ceiling), or undefined where a limit is set."""


class StabilityFailure(AssertionError):
    """A group lies outside the stability band of the other groups."""


class NonInferiorityFailure(AssertionError):
    """A candidate is worse than the baseline by more than the tolerance."""


#: photometric limit keys → (fraction of a PhotometryBlock, "min" | "max")
PHOTOMETRY_METRICS: dict[str, tuple[str, str]] = {
    "max_anomalous": ("anomalous", "max"),
    "min_inside_97_103": ("inside_97_103", "min"),
    "max_outside_90_110": ("outside_90_110", "max"),
}
#: size-bin labels of the photometric checks: the default bins of PhotometryConfig
PHOTOMETRY_BINS = tuple(PhotometryConfig().bin_labels())


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
    """What a check reads: the run's settings, lazily computed results and limits."""

    settings: Any

    def limit(self, check: "Check") -> float | None: ...

    def evaluation(self, spec: str, dataset: str) -> Any: ...

    def analysis(self, spec: str, dataset: str) -> Any: ...

    def smoke(self, spec: str, dataset: str) -> Any: ...

    def comparison(self, candidate: str, baseline: str, dataset: str) -> Any: ...


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
    def optional(self) -> bool:
        """The check becomes a test item only where the floors file names it."""
        return False

    @property
    def properties(self) -> list[tuple[str, Any]]:
        return [("detector", self.detector), ("dataset", self.dataset)]

    def check(self, run: CheckRun) -> Outcome:
        raise NotImplementedError

    def floor_table(self) -> tuple[str, ...]:
        """Where the limit sits in the floors file, below ``floors.<det>.<dataset>``
        (the key inside that table is ``self.metric``)."""
        raise NotImplementedError(f"{type(self).__name__} has no limit")


@dataclass(frozen=True)
class PixelFloorCheck(Check):
    """A pooled pixel score of one star region reaches its floor, against the reference
    masks or (``against="truth"``) the simulation truth (``[floors.…​.truth.<region>]``;
    an item only where the floors file names it)."""

    detector: str
    dataset: str
    region: str
    metric: str
    against: str = "reference"
    has_limit: ClassVar[bool] = True

    @classmethod
    def for_pair(cls, detector, dataset, settings) -> list[Check]:
        from pytest_crbench.science.metrics import METRICS
        from pytest_crbench.science.regions import region_names

        return [cls(detector, dataset, region, metric, against)
                for against in ("reference", "truth")
                for region in region_names(settings.k) for metric in METRICS]

    @property
    def optional(self) -> bool:
        return self.against == "truth"

    def __str__(self) -> str:
        where = self.region if self.against == "reference" else f"truth / {self.region}"
        return f"{self.detector} / {self.dataset} / {where} / {self.metric}"

    def node_name(self) -> str:
        where = self.region if self.against == "reference" else f"truth::{self.region}"
        return f"{self.detector}::{self.dataset}::{where}::{self.metric}"

    @property
    def properties(self):
        return super().properties + [("region", self.region), ("metric", self.metric),
                                     ("against", self.against)]

    def floor_table(self) -> tuple[str, ...]:
        return (self.region,) if self.against == "reference" else ("truth", self.region)

    def check(self, run: CheckRun) -> Outcome:
        ev = run.evaluation(self.detector, self.dataset)
        if self.against == "truth" and not ev.has_truth:
            from pytest_crbench.science.metrics import Score

            score = Score(None, f"no exposure of {self.dataset} carries CRTRUTH: nothing to "
                                "score against the truth")
        else:
            score = ev.scores(self.region, self.against).metric(self.metric)
        floor = run.limit(self)
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

    def check(self, run: CheckRun) -> Outcome:
        a = run.analysis(self.detector, self.dataset)
        if a.error:
            raise CRBenchError(a.error)
        limit = run.limit(self)
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


@dataclass(frozen=True)
class NonInferiorityCheck(Check):
    """``detector`` is not worse than ``baseline`` on one pooled pixel score by more than
    ``--crbench-max-drop``: the check fails only when the whole paired bootstrap interval
    of detector − baseline (same resampled exposures for both) lies below −max_drop.
    A detector compared with itself gives Δ = 0 in every replicate and passes."""

    detector: str
    dataset: str
    region: str
    metric: str
    baseline: str
    failure: ClassVar[type[AssertionError]] = NonInferiorityFailure

    @classmethod
    def for_pair(cls, detector, dataset, settings) -> list[Check]:
        from pytest_crbench.science.metrics import METRICS
        from pytest_crbench.science.regions import region_names

        base = settings.baseline
        if base is None or base == detector:
            return []
        return [cls(detector, dataset, region, metric, base)
                for region in region_names(settings.k) for metric in METRICS]

    def __str__(self) -> str:
        return (f"{self.detector} / {self.dataset} / {self.region} / {self.metric} vs "
                f"{self.baseline}")

    def node_name(self) -> str:
        return (f"{self.detector}::{self.dataset}::{self.region}::{self.metric}::vs::"
                f"{self.baseline}")

    @property
    def properties(self):
        return super().properties + [("region", self.region), ("metric", self.metric),
                                     ("baseline", self.baseline)]

    def check(self, run: CheckRun) -> Outcome:
        diffs = run.comparison(self.detector, self.baseline, self.dataset)
        max_drop, confidence = run.settings.max_drop, run.settings.confidence
        d = next(d for d in diffs if (d.kind, d.part, d.metric)
                 == ("pixels", self.region, self.metric))
        if d.non_inferior(max_drop):
            return Outcome(self, d.delta.value, -max_drop, True, d.delta.reason)
        return Outcome(self, d.delta.value, -max_drop, False, message=(
            f"{self}: candidate - baseline = {d.delta:pct} percentage points "
            f"({100 * d.candidate_value:.1f} vs {100 * d.baseline_value:.1f} %); the whole "
            f"{100 * confidence:g} % paired bootstrap interval lies below "
            f"-{100 * max_drop:g} (--crbench-max-drop)"))


#: check kinds of a dataset with references, in item order
SCORED_KINDS: tuple[type[Check], ...] = (PixelFloorCheck, PhotometryCheck, StabilityCheck,
                                         NonInferiorityCheck)
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
