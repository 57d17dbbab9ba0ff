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
    _summaries: dict[str, dict] = field(default_factory=dict)
    _errors: dict[Any, BaseException] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if self.settings.floors is not None:
            self.floors = load_floors(self.settings.floors, metrics=METRICS)

    # -- lazily computed pieces; an error is remembered so it is raised once per key --
    def _cached(self, store: dict, key, make):
        """``store[key]``, made once; a CRBenchError is remembered and raised again."""
        error_key = (id(store), key)
        if error_key in self._errors:
            raise self._errors[error_key]
        if key not in store:
            try:
                store[key] = make()
            except CRBenchError as exc:
                self._errors[error_key] = exc
                raise
        return store[key]

    def detector(self, spec: str):
        from .detectors.registry import load_detector

        return self._cached(self._detectors, spec, lambda: load_detector(
            spec, threshold=self.settings.threshold, device=self.settings.device))

    def prepared(self, dataset: str) -> PreparedDataset:
        from .datasets import load_dataset

        def make():
            data = load_dataset(dataset, data_dir=self.settings.data_dir,
                                offline=self.settings.offline)
            prepared = prepare(data, self.settings.k)
            self._summaries[dataset] = prepared.summary()
            return prepared

        return self._cached(self._prepared, dataset, make)

    def evaluation(self, spec: str, dataset: str) -> Evaluation:
        def make():
            return evaluate(self.detector(spec), self.prepared(dataset), spec=spec)

        return self._cached(self._evaluations, (spec, dataset), make)

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
        """Evaluations in the configured order (dataset, then detector): deterministic."""
        ds, det = self.settings.dataset, self.settings.model

        def order(key):
            return (ds.index(key[1]) if key[1] in ds else len(ds),
                    det.index(key[0]) if key[0] in det else len(det), key)

        return [self._evaluations[k] for k in sorted(self._evaluations, key=order)]

    @property
    def dataset_summaries(self) -> list[dict]:
        names = self.settings.dataset
        return [self._summaries[n] for n in sorted(
            self._summaries, key=lambda n: (names.index(n) if n in names else len(names), n))]

    # -- pytest-xdist: workers send records, the controller merges and writes once --
    def worker_record(self) -> dict:
        return {"evaluations": [ev.to_record() for ev in self.evaluations],
                "datasets": self.dataset_summaries}

    def merge(self, record: dict) -> None:
        for ev in record.get("evaluations", []):
            self._evaluations.setdefault((ev["detector"], ev["dataset"]),
                                         Evaluation.from_record(ev))
        for summary in record.get("datasets", []):
            self._summaries.setdefault(summary["name"], summary)

    def write_masks(self) -> list[str]:
        """Mask files of the evaluations computed in this process."""
        from .results import write_masks

        if self.settings.save_masks is None:
            return []
        n = 0
        for (spec, dataset), ev in self._evaluations.items():
            if dataset in self._prepared and all(e.mask is not None for e in ev.exposures):
                n += len(write_masks(self.settings.save_masks, ev, self._prepared[dataset]))
        return [f"mask files: {n} in {self.settings.save_masks}"] if n else []

    def finish(self) -> list[str]:
        """Write the results JSON and generated floors; returns one line per output."""
        from .results import results_document, write_json

        lines = []
        s = self.settings
        if s.json is not None and self.evaluations:
            doc = results_document(self.evaluations, self.dataset_summaries, s.as_dict())
            lines.append(f"results JSON: {write_json(s.json, doc)}")
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
