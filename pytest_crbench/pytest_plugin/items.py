"""The standard suite's test items, collected automatically under ``--crbench`` (a
downstream repository needs no test file): one :class:`CheckItem` per gate check of
:mod:`pytest_crbench.bench.checks`, below one :class:`CRBenchCollector` (node id
``crbench``):

* ``crbench::<det>::<dataset>::<region>::<metric>``: the pooled pixel score reaches its
  floor;
* ``crbench::<det>::<dataset>::truth::<region>::<metric>``: the pooled pixel score
  against the simulation truth reaches its floor — an item only where the floors file
  names it (``[floors.<det>.<dataset>.truth.<region>]``);
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

from pytest_crbench.bench.checks import Check, FloorFailure, StabilityFailure
from pytest_crbench.errors import CRBenchError

__all__ = ["CRBenchCollector", "CheckItem", "FloorFailure", "StabilityFailure"]


class CRBenchCollector(pytest.Collector):
    """Parent node of the generated items; holds the run state it hands to them."""

    def __init__(self, *, bench, **kwargs):
        super().__init__(**kwargs)
        self.bench = bench

    def collect(self):
        for check in self.bench.checks:
            yield CheckItem.from_parent(self, name=check.node_name(), check=check)


class CheckItem(pytest.Item):
    """One gate check of the run (see :mod:`pytest_crbench.bench.checks`)."""

    def __init__(self, *, check: Check, **kwargs):
        super().__init__(**kwargs)
        self.check = check
        self.user_properties.extend(check.properties)

    def runtest(self) -> None:
        outcome = self.parent.bench.check(self.check)
        self.user_properties.append(("value", outcome.value))
        self.user_properties.append(("floor", outcome.limit))
        if outcome.skip:
            pytest.skip(outcome.skip)
        if not outcome.passed:
            raise self.check.failure(outcome.message)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (self.check.failure, CRBenchError)):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"crbench floor {self.check}"
