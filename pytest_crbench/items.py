"""The standard suite's test items: one per (detector, dataset, region, metric).

They are collected automatically under ``--crbench`` (a downstream repository needs no
test file), each asserting that the pooled score reaches its floor.
"""

from __future__ import annotations

import pytest

from .errors import CRBenchError
from .floors import FloorKey


class FloorFailure(AssertionError):
    """A score is below its floor, or undefined where a floor was set."""


class CRBenchCollector(pytest.Collector):
    """Parent node of the generated items (node id ``crbench``)."""

    def __init__(self, *, keys: list[FloorKey], **kwargs):
        super().__init__(**kwargs)
        self.keys = keys

    def collect(self):
        for key in self.keys:
            name = f"{key.detector}::{key.dataset}::{key.region}::{key.metric}"
            yield FloorItem.from_parent(self, name=name, key=key)


class FloorItem(pytest.Item):
    def __init__(self, *, key: FloorKey, **kwargs):
        super().__init__(**kwargs)
        self.key = key
        self.user_properties.extend([("detector", key.detector), ("dataset", key.dataset),
                                     ("region", key.region), ("metric", key.metric)])

    def runtest(self) -> None:
        from .plugin import bench_session

        outcome = bench_session(self.config).check(self.key)
        self.user_properties.append(("value", outcome.value))
        self.user_properties.append(("floor", outcome.floor))
        if outcome.passed:
            return
        if outcome.value is None:
            raise FloorFailure(f"{self.key}: score is undefined ({outcome.reason}) but has "
                               f"floor {outcome.floor:.3f}")
        raise FloorFailure(
            f"{self.key}: observed {outcome.value:.4f} is below floor {outcome.floor:.3f} "
            f"(short by {outcome.floor - outcome.value:.4f})"
        )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (FloorFailure, CRBenchError)):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"crbench floor {self.key}"
