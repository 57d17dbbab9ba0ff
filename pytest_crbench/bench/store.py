"""Where a run keeps what it computed: a lazy per-key cache and the collected results.

* :class:`Memo`: a value made once per key; an error raised while making it is
  remembered and raised again for every later request, so a broken detector or dataset
  fails each of its tests with the same one-line message and is tried only once.  It is
  the boundary with foreign code: an exception that is not a
  :class:`~pytest_crbench.errors.CRBenchError` becomes one naming the key.
* :class:`RunResults`: the evaluations, analyses, dataset summaries, smoke results and
  notes of a run, in the configured order, and how pytest-xdist workers hand them to
  the controller as they complete (:meth:`RunResults.new_record` /
  :meth:`RunResults.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Hashable, Iterator, Sequence, TypeVar

from pytest_crbench.bench.analysis import Analysis
from pytest_crbench.bench.evaluation import Evaluation
from pytest_crbench.bench.records import DatasetSummary, Note, SmokeResult
from pytest_crbench.errors import CRBenchError

__all__ = ["Memo", "RunResults"]

T = TypeVar("T")


class Memo(Generic[T]):
    """Values made once per key, with the errors that making them raised."""

    def __init__(self) -> None:
        self._values: dict[Hashable, T] = {}
        self._errors: dict[Hashable, CRBenchError] = {}

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()`` the first time, the stored value (or the stored error) after."""
        if key in self._errors:
            raise self._errors[key]
        if key not in self._values:
            try:
                self._values[key] = make()
            except CRBenchError as exc:
                self._errors[key] = exc
                raise
            except Exception as exc:
                what = " on ".join(map(str, key)) if isinstance(key, tuple) else str(key)
                error = CRBenchError(f"{what}: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                self._errors[key] = error
                raise error from exc
        return self._values[key]

    def put(self, key: Hashable, value: T) -> None:
        """Store ``value`` under ``key`` (replacing a remembered error)."""
        self._errors.pop(key, None)
        self._values[key] = value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __getitem__(self, key: Hashable) -> T:
        return self._values[key]

    def items(self) -> Iterator[tuple[Hashable, T]]:
        return iter(list(self._values.items()))


def _order(names: Sequence[str], name: str) -> int:
    return names.index(name) if name in names else len(names)


@dataclass
class RunResults:
    """The results of a run, keyed by (detector spec, dataset) or dataset name.

    ``models`` and ``datasets`` are the configured orders: every list comes out in that
    order (dataset, then detector), so outputs are deterministic whatever order tests
    ran in.
    """

    models: Sequence[str] = ()
    datasets: Sequence[str] = ()
    evaluations_by_pair: dict[tuple[str, str], Evaluation] = field(default_factory=dict)
    analyses_by_pair: dict[tuple[str, str], Analysis] = field(default_factory=dict)
    summaries: dict[str, DatasetSummary] = field(default_factory=dict)
    smoke_by_pair: dict[tuple[str, str], SmokeResult] = field(default_factory=dict)
    notes_by_pair: dict[tuple[str, str], str] = field(default_factory=dict)
    _sent: dict[str, set] = field(default_factory=dict, repr=False)

    # -- adding ------------------------------------------------------------------------
    def add_run(self, evaluation: Evaluation, analysis: Analysis | None) -> None:
        pair = (evaluation.detector, evaluation.dataset)
        self.evaluations_by_pair.setdefault(pair, evaluation)
        if analysis is not None:
            self.analyses_by_pair.setdefault(pair, analysis)

    def add_note(self, spec: str, dataset: str, note: str | None) -> None:
        if note:
            self.notes_by_pair.setdefault((spec, dataset), note)

    # -- reading, in the configured order ---------------------------------------------
    def _pair_order(self, pair: tuple[str, str]) -> tuple:
        return (_order(self.datasets, pair[1]), _order(self.models, pair[0]), pair)

    @property
    def evaluations(self) -> list[Evaluation]:
        return [self.evaluations_by_pair[k]
                for k in sorted(self.evaluations_by_pair, key=self._pair_order)]

    @property
    def analyses(self) -> list[Analysis]:
        """Analyses in the order of :attr:`evaluations`."""
        return [self.analyses_by_pair[k]
                for k in sorted(self.analyses_by_pair, key=self._pair_order)]

    @property
    def dataset_summaries(self) -> list[DatasetSummary]:
        return [self.summaries[n] for n in sorted(
            self.summaries, key=lambda n: (_order(self.datasets, n), n))]

    @property
    def smoke_results(self) -> list[SmokeResult]:
        return [self.smoke_by_pair[k] for k in sorted(self.smoke_by_pair)]

    @property
    def notes(self) -> list[Note]:
        return [Note(d, s, n) for (d, s), n in sorted(self.notes_by_pair.items())]

    def note(self, spec: str, dataset: str) -> str | None:
        return self.notes_by_pair.get((spec, dataset))

    def analysis(self, spec: str, dataset: str) -> Analysis | None:
        return self.analyses_by_pair.get((spec, dataset))

    def observed(self, spec: str, dataset: str) -> tuple[Evaluation | None, Analysis | None]:
        """``(evaluation, analysis)`` of a pair, None where not computed."""
        return self.evaluations_by_pair.get((spec, dataset)), self.analysis(spec, dataset)

    def __bool__(self) -> bool:
        return bool(self.evaluations_by_pair or self.smoke_by_pair)

    # -- pytest-xdist: workers send records, the controller merges them ---------------
    def new_record(self) -> dict[str, Any] | None:
        """The results completed since the last call, as a JSON-able record for
        :meth:`merge` (None if nothing).  pytest-xdist workers send it with each test
        report, so the controller holds every completed result even if a worker crashes
        later."""
        def fresh(kind: str, store: dict) -> list:
            sent = self._sent.setdefault(kind, set())
            keys = [k for k in store if k not in sent]
            sent.update(keys)
            return keys

        pairs = fresh("evaluations", self.evaluations_by_pair)
        record = {
            "evaluations": [self.evaluations_by_pair[k].to_record() for k in pairs],
            "analyses": [self.analyses_by_pair[k].to_record() for k in pairs
                         if k in self.analyses_by_pair],
            "smoke": [self.smoke_by_pair[k].to_record()
                      for k in fresh("smoke", self.smoke_by_pair)],
            "datasets": [self.summaries[k].to_record() for k in fresh("datasets", self.summaries)],
            "notes": [[*k, self.notes_by_pair[k]] for k in fresh("notes", self.notes_by_pair)],
        }
        return record if any(record.values()) else None

    def merge(self, record: dict[str, Any]) -> None:
        for sm in record.get("smoke", []):
            self.smoke_by_pair.setdefault((sm["detector"], sm["dataset"]),
                                          SmokeResult.from_record(sm))
        for spec, dataset, note in record.get("notes", []):
            self.add_note(spec, dataset, note)
        for ev in record.get("evaluations", []):
            self.evaluations_by_pair.setdefault((ev["detector"], ev["dataset"]),
                                                Evaluation.from_record(ev))
        for summary in record.get("datasets", []):
            self.summaries.setdefault(summary["name"], DatasetSummary.from_record(summary))
        for a in record.get("analyses", []):
            self.analyses_by_pair.setdefault((a["detector"], a["dataset"]),
                                             Analysis.from_record(a))
