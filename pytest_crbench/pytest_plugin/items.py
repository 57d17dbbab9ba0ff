"""The standard suite's test items, collected automatically under ``--crbench`` (a
downstream repository needs no test file):

* ``crbench::<det>::<dataset>::<region>::<metric>``: the pooled pixel score reaches its
  floor;
* ``crbench::<det>::<dataset>::photometry::<all|16-50|50-200|200-400>::<limit>``
  (``max_anomalous``, ``min_inside_97_103``, ``max_outside_90_110``): the photometric
  fraction respects its floor or ceiling;
* ``crbench::<det>::<dataset>::stability::<f1|f2|rms>``: no group lies outside the
  3σ-equivalent prediction interval of the other groups (skipped with fewer than 3 groups);
* ``crbench::<det>::<dataset>::<region>::<metric>::vs::<baseline>`` with
  ``--crbench-baseline``: non-inferiority — fails when the whole paired bootstrap
  interval of det − baseline lies below ``-max_drop`` (``--crbench-max-drop``);
* ``crbench::<det>::<dataset>::smoke`` for smoke-only datasets (single exposures, no
  reference possible): the detector runs on every exposure and returns a valid mask.

Without a floor (or ceiling) a score item passes and only reports its value.
"""

from __future__ import annotations

import pytest

from pytest_crbench.errors import CRBenchError
from pytest_crbench.bench.floors import ComparisonKey, FloorKey, PhotometryKey, SmokeKey, StabilityKey


class FloorFailure(AssertionError):
    """A score is below its floor, or undefined where a floor was set."""


class StabilityFailure(AssertionError):
    """A group lies outside the stability band of the other groups."""


class NonInferiorityFailure(AssertionError):
    """A candidate is worse than the baseline by more than the tolerance."""


def item_name(key) -> str:
    """The node name below ``crbench`` of the item asserting ``key``."""
    if isinstance(key, PhotometryKey):
        return f"{key.detector}::{key.dataset}::photometry::{key.bin}::{key.metric}"
    if isinstance(key, StabilityKey):
        return f"{key.detector}::{key.dataset}::stability::{key.quantity}"
    if isinstance(key, SmokeKey):
        return f"{key.detector}::{key.dataset}::smoke"
    if isinstance(key, ComparisonKey):
        return f"{key.detector}::{key.dataset}::{key.region}::{key.metric}::vs::{key.baseline}"
    return f"{key.detector}::{key.dataset}::{key.region}::{key.metric}"


class CRBenchCollector(pytest.Collector):
    """Parent node of the generated items (node id ``crbench``)."""

    def __init__(self, *, keys: list[FloorKey], **kwargs):
        super().__init__(**kwargs)
        self.keys = keys

    def collect(self):
        for key in self.keys:
            yield FloorItem.from_parent(self, name=item_name(key), key=key)


class FloorItem(pytest.Item):
    def __init__(self, *, key: FloorKey, **kwargs):
        super().__init__(**kwargs)
        self.key = key
        self.user_properties.extend([("detector", key.detector), ("dataset", key.dataset)])
        if isinstance(key, PhotometryKey):
            self.user_properties.extend([("size_bin", key.bin), ("metric", key.metric)])
        elif isinstance(key, StabilityKey):
            self.user_properties.append(("quantity", key.quantity))
        elif isinstance(key, SmokeKey):
            pass
        elif isinstance(key, ComparisonKey):
            self.user_properties.extend([("region", key.region), ("metric", key.metric),
                                         ("baseline", key.baseline)])
        else:
            self.user_properties.extend([("region", key.region), ("metric", key.metric)])

    def runtest(self) -> None:
        from pytest_crbench.pytest_plugin.hooks import bench_session

        outcome = bench_session(self.config).check(self.key)
        self.user_properties.append(("value", outcome.value))
        self.user_properties.append(("floor", outcome.floor))
        if outcome.skip:
            pytest.skip(outcome.skip)
        if outcome.passed:
            return
        if isinstance(self.key, StabilityKey):
            raise StabilityFailure(outcome.message)
        if isinstance(self.key, ComparisonKey):
            raise NonInferiorityFailure(outcome.message)
        if outcome.message:
            raise FloorFailure(outcome.message)
        if outcome.value is None:
            raise FloorFailure(f"{self.key}: score is undefined ({outcome.reason}) but has "
                               f"floor {outcome.floor:.3f}")
        raise FloorFailure(
            f"{self.key}: observed {outcome.value:.4f} is below floor {outcome.floor:.3f} "
            f"(short by {outcome.floor - outcome.value:.4f})"
        )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (FloorFailure, StabilityFailure, NonInferiorityFailure,
                                      CRBenchError)):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"crbench floor {self.key}"
