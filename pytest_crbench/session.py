"""The state of one benchmark run: detectors, prepared datasets, evaluations, outputs.

Everything is computed lazily and once: the first test that needs deepCR on ``sim``
runs it, every later test reads the cached :class:`~pytest_crbench.evaluation.Evaluation`.
At the end :meth:`BenchSession.finish` writes the JSON, the masks and the generated
floors, each once and atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import CRBenchError
from .evaluation import Evaluation, PreparedDataset, evaluate, prepare
from .floors import FloorKey, floor_from_observed, load_floors, write_floors
from .metrics import METRICS, scores


@dataclass
class Outcome:
    key: FloorKey
    value: float | None
    floor: float | None
    passed: bool
    reason: str | None = None


@dataclass
class BenchSession:
    settings: Settings
    floors: dict[FloorKey, float] = field(default_factory=dict)
    _detectors: dict[str, Any] = field(default_factory=dict)
    _prepared: dict[str, PreparedDataset] = field(default_factory=dict)
    _evaluations: dict[tuple[str, str], Evaluation] = field(default_factory=dict)
    _errors: dict[Any, BaseException] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if self.settings.floors is not None:
            self.floors = load_floors(self.settings.floors, metrics=METRICS)

    # -- lazily computed pieces; an error is remembered so it is raised once per key --
    def _cached(self, store: dict, key, make):
        if key in self._errors:
            raise self._errors[key]
        if key not in store:
            try:
                store[key] = make()
            except CRBenchError as exc:
                self._errors[key] = exc
                raise
        return store[key]

    def detector(self, spec: str):
        from .detectors.registry import load_detector

        return self._cached(self._detectors, ("detector", spec), lambda: load_detector(
            spec, threshold=self.settings.threshold, device=self.settings.device))

    def prepared(self, dataset: str) -> PreparedDataset:
        from .datasets import load_dataset

        def make():
            data = load_dataset(dataset, data_dir=self.settings.data_dir,
                                offline=self.settings.offline)
            return prepare(data, self.settings.k)

        return self._cached(self._prepared, ("dataset", dataset), make)

    def evaluation(self, spec: str, dataset: str) -> Evaluation:
        def make():
            return evaluate(self.detector(spec), self.prepared(dataset), spec=spec)

        return self._cached(self._evaluations, ("evaluation", spec, dataset), make)

    # -- the floor assertion behind each standard test item --
    def check(self, key: FloorKey) -> Outcome:
        ev = self.evaluation(key.detector, key.dataset)
        score = scores(ev.pooled(key.region))[key.metric]
        floor = self.floors.get(key)
        if score.value is None:
            outcome = Outcome(key, None, floor, floor is None, score.reason)
        elif floor is None:
            outcome = Outcome(key, score.value, None, True)
        else:
            outcome = Outcome(key, score.value, floor, score.value >= floor)
        self.outcomes.append(outcome)
        return outcome

    @property
    def evaluations(self) -> list[Evaluation]:
        return list(self._evaluations.values())

    @property
    def prepared_datasets(self) -> list[PreparedDataset]:
        return list(self._prepared.values())

    def finish(self) -> list[str]:
        """Write the configured outputs; returns one line per file written."""
        from .results import results_document, write_json, write_masks

        lines = []
        s = self.settings
        if s.json is not None and self.evaluations:
            doc = results_document(self.evaluations, self.prepared_datasets, s.as_dict())
            lines.append(f"results JSON: {write_json(s.json, doc)}")
        if s.save_masks is not None:
            n = 0
            for ev in self.evaluations:
                n += len(write_masks(s.save_masks, ev, self._prepared[ev.dataset]))
            lines.append(f"mask files: {n} in {s.save_masks}")
        if s.generate_floors is not None and self.evaluations:
            new = {}
            for ev in self.evaluations:
                for region in ev.regions:
                    for metric, score in scores(ev.pooled(region)).items():
                        if score.value is not None:
                            key = FloorKey(ev.detector, ev.dataset, region, metric)
                            new[key] = floor_from_observed(score.value, s.floors_margin)
            path = write_floors(s.generate_floors, new, header=(
                f"Floors generated by pytest-crbench from a run: observed score minus "
                f"{s.floors_margin:g}, rounded down."))
            lines.append(f"floors written: {path} ({len(new)} floors)")
        return lines
