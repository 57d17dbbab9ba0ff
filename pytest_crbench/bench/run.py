"""The state of one benchmark run: detectors, prepared datasets, evaluations, checks.

Everything is computed lazily and once (:class:`~pytest_crbench.bench.store.Memo`): the
first test that needs deepCR on ``sim`` runs it — pixel scores, photometry, CR density
and stability in one pass over the exposures (:meth:`BenchSession.run`) — and every
later test reads the cached :class:`DetectorRun`.  What was computed is collected in
:attr:`BenchSession.results` (a :class:`~pytest_crbench.bench.store.RunResults`, which
also merges pytest-xdist workers' records).  Writing the outputs at the end of a run is
:func:`pytest_crbench.reporting.outputs.write_outputs`.  No pytest here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_crbench.bench.analysis import Analysis
from pytest_crbench.bench.checks import Check, Outcome, checks_for
from pytest_crbench.bench.evaluation import Evaluation, PreparedDataset, evaluate, prepare
from pytest_crbench.bench.floors import (floors_owner, load_floors, lookup, made_with_mismatch,
                                         read_made_with)
from pytest_crbench.bench.records import SmokeExposure, SmokeResult
from pytest_crbench.bench.settings import Settings
from pytest_crbench.bench.store import Memo, RunResults
from pytest_crbench.science.metrics import METRICS

__all__ = ["DetectorRun", "BenchSession"]


@dataclass(frozen=True)
class DetectorRun:
    """One detector on one dataset: its pixel scores and its analyses."""

    evaluation: Evaluation
    analysis: Analysis


@dataclass
class BenchSession:
    """Lazily computed pieces of a run, its checks and their outcomes."""

    settings: Settings
    floors: dict[Check, float] = field(default_factory=dict)
    results: RunResults = field(init=False)
    outcomes: list[Outcome] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    #: called with a one-line message while the run waits (a cache lock held by another
    #: process); the pytest plugin writes it to the terminal
    notify: Any = None
    _detectors: Memo = field(default_factory=Memo, repr=False)
    _datasets: Memo = field(default_factory=Memo, repr=False)
    _prepared: Memo = field(default_factory=Memo, repr=False)
    _catalogs: Memo = field(default_factory=Memo, repr=False)
    _runs: Memo = field(default_factory=Memo, repr=False)
    _smoke: Memo = field(default_factory=Memo, repr=False)
    _checks: list[Check] | None = field(default=None, repr=False)
    _distributed: Memo = field(default_factory=Memo, repr=False)
    _engine: Any = field(default=None, repr=False)
    _comparisons: Memo = field(default_factory=Memo, repr=False)
    _intervals: Memo = field(default_factory=Memo, repr=False)
    made_with: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = RunResults(models=list(self.settings.model),
                                  datasets=list(self.settings.dataset))
        if self.settings.floors is not None:
            self.floors = load_floors(self.settings.floors, metrics=METRICS)
            self.made_with = read_made_with(self.settings.floors)

    # -- objects given directly (instead of loaded by spec or name) -------------------
    def add_detector(self, spec: str, detector) -> None:
        """Use ``detector`` (any :class:`~pytest_crbench.detectors.base.Detector`) for
        ``spec`` instead of loading it."""
        self._detectors.put(spec, detector)

    def add_dataset(self, dataset) -> None:
        """Use an in-memory :class:`~pytest_crbench.science.exposures.Dataset` for its
        name instead of loading it from the registry."""
        self._datasets.put(dataset.name, dataset)

    # -- lazily computed pieces --------------------------------------------------------
    def detector(self, spec: str):
        from pytest_crbench.detectors.specs import load_detector

        return self._detectors.get(spec, lambda: load_detector(
            spec, threshold=self.settings.threshold, device=self.settings.device,
            precision=self.settings.precision))

    def dataset(self, name: str):
        """The loaded :class:`~pytest_crbench.science.exposures.Dataset` (built or fetched once)."""
        from pytest_crbench.datasets.loading import load_dataset

        return self._datasets.get(name, lambda: load_dataset(
            name, data_dir=self.settings.data_dir, offline=self.settings.offline,
            lock_timeout=self.settings.lock_timeout, notify=self.notify))

    def prepared(self, dataset: str) -> PreparedDataset:
        """References, region maps and audit of ``dataset`` (shared by every detector)."""
        def make():
            prepared = prepare(self.dataset(dataset), self.settings.k,
                               self.settings.reference_config(), self.settings.truth_snr)
            self.results.summaries[dataset] = prepared.summary()
            return prepared

        return self._prepared.get(dataset, make)

    def catalog(self, dataset: str):
        """The stars of every exposure of ``dataset`` (found once, for every detector)."""
        from pytest_crbench.bench.analysis import find_catalog

        return self._catalogs.get(dataset, lambda: find_catalog(self.prepared(dataset)))

    # -- the Dask engine of --crbench-scheduler ------------------------------------------
    def engine(self):
        """The :class:`~pytest_crbench.bench.distributed.DaskEngine` (started on first use)."""
        if self._engine is None:
            from pytest_crbench.bench.distributed import DaskEngine

            self._engine = DaskEngine(self.settings.scheduler)
        return self._engine

    def close(self) -> None:
        """Shut down the Dask client (and a LocalCluster this run started)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def _distributed_run(self, dataset: str):
        """Every configured detector, and the baseline, on ``dataset`` on the cluster,
        in one pass that shares the references (:mod:`pytest_crbench.bench.distributed`)."""
        from pytest_crbench.bench.distributed import WorkerOptions

        def make():
            result = self.engine().evaluate(
                dataset, self.settings.detectors, WorkerOptions.from_settings(self.settings),
                anomalous_level=self.settings.anomalous_level)
            self.results.summaries[dataset] = result.summary
            return result

        return self._distributed.get(dataset, make)

    def run(self, spec: str, dataset: str) -> DetectorRun:
        """Pixel scores, photometry, density and stability of ``spec`` on ``dataset``,
        computed in one pass over the exposures (the cleaned images are never kept);
        with ``--crbench-scheduler`` on a Dask cluster, every configured detector at
        once, with the same results."""
        from pytest_crbench.bench.analysis import ExposurePhotometry, analyse
        from pytest_crbench.datasets.loading import domain_note

        if self.settings.scheduler is not None and spec in self.settings.detectors:
            def make_distributed():
                result = self._distributed_run(dataset)
                if spec in result.errors:
                    raise result.errors[spec]
                ev, analysis = result.evaluations[spec], result.analyses[spec]
                self.results.add_note(spec, dataset, result.notes.get(spec))
                self.results.add_run(ev, analysis)
                return DetectorRun(ev, analysis)

            return self._runs.get((spec, dataset), make_distributed)

        def make():
            detector, prepared = self.detector(spec), self.prepared(dataset)
            collector = ExposurePhotometry(self.catalog(dataset),
                                           fill_method=self.settings.fill_method)
            ev = evaluate(detector, prepared, spec=spec, on_exposure=collector)
            analysis = analyse(ev, prepared, collector,
                               anomalous_level=self.settings.anomalous_level)
            self.results.add_note(spec, dataset, domain_note(detector, prepared.dataset))
            self.results.add_run(ev, analysis)
            return DetectorRun(ev, analysis)

        return self._runs.get((spec, dataset), make)

    def evaluation(self, spec: str, dataset: str) -> Evaluation:
        return self.run(spec, dataset).evaluation

    def analysis(self, spec: str, dataset: str) -> Analysis:
        return self.run(spec, dataset).analysis

    def smoke(self, spec: str, dataset: str) -> SmokeResult:
        """Run ``spec`` on every exposure of a smoke-only dataset (nothing is scored)."""
        from pytest_crbench.bench.evaluation import run_detector
        from pytest_crbench.datasets.loading import domain_note

        def make():
            data = self.dataset(dataset)
            det = self.detector(spec)
            rows = []
            for group, exp in data.exposures():
                t0 = time.perf_counter()
                pred = run_detector(det, exp, exp.bad_pixels, spec=spec)
                rows.append(SmokeExposure(group.name, exp.name, list(exp.shape),
                                          float(pred.mask.mean()), time.perf_counter() - t0))
            note = domain_note(det, data)
            self.results.add_note(spec, dataset, note)
            result = SmokeResult(spec, str(getattr(det, "version", "")), dataset, rows, note)
            self.results.smoke_by_pair[(spec, dataset)] = result
            return result

        return self._smoke.get((spec, dataset), make)

    def prepared_datasets(self) -> dict[str, PreparedDataset]:
        """The datasets prepared in this process (what mask files need)."""
        return dict(self._prepared.items())

    # -- checks ------------------------------------------------------------------------
    @property
    def all_checks(self) -> list[Check]:
        """Every check of the run, optional ones included (what floors are generated
        for), in item order."""
        if self._checks is None:
            from pytest_crbench.datasets.loading import is_scored

            s = self.settings
            self._checks = checks_for(s, lambda ds: is_scored(ds, data_dir=s.data_dir))
        return self._checks

    @property
    def checks(self) -> list[Check]:
        """The gate checks of the run, in item order: an optional check (a score against
        the truth) only where the floors name it."""
        return [c for c in self.all_checks if not c.optional or c in self.floors]

    def check(self, check: Check) -> Outcome:
        """Run one gate check and remember its outcome; a failure against limits made
        with another detector version or threshold says so."""
        outcome = check.check(self)
        if not outcome.passed and check.has_limit:
            why = self.floors_mismatch(check)
            if why:
                outcome.message = f"{outcome.message} ({why})"
        self.outcomes.append(outcome)
        return outcome

    def limit(self, check: Check) -> float | None:
        """The floor or ceiling of ``check`` (see :func:`pytest_crbench.bench.floors.lookup`:
        independent draws of a dataset and candidates of the baseline share limits)."""
        return lookup(self.floors, check, self.settings.baseline)

    # -- statistics: intervals, paired comparisons, provenance of the floors ----------
    def sample(self, spec: str, dataset: str, against: str = "reference"):
        """The :class:`~pytest_crbench.bench.intervals.Sample` of a computed pair (scores
        against the reference, or ``against="truth"``)."""
        from pytest_crbench.bench.intervals import Sample

        ev, analysis = self.results.observed(spec, dataset)
        if ev is None:
            ev, analysis = self.evaluation(spec, dataset), self.analysis(spec, dataset)
        return Sample.from_evaluation(ev, analysis, against)

    def intervals(self, spec: str, dataset: str) -> list:
        """Bootstrap intervals of every pooled score of ``spec`` on ``dataset``."""
        from pytest_crbench.bench.intervals import sample_intervals

        return self._intervals.get((spec, dataset), lambda: sample_intervals(
            self.sample(spec, dataset), self.settings.bootstrap()))

    def comparison(self, candidate: str, baseline: str, dataset: str) -> list:
        """Paired differences of ``candidate`` against ``baseline`` on ``dataset``
        (:class:`~pytest_crbench.bench.comparison.Difference` rows)."""
        from pytest_crbench.bench.comparison import compare_samples

        return self._comparisons.get((candidate, baseline, dataset), lambda: compare_samples(
            self.sample(candidate, dataset), self.sample(baseline, dataset),
            self.settings.bootstrap()))

    def comparisons(self) -> list:
        """Every computed detector against the baseline, per dataset (after the run)."""
        base = self.settings.baseline
        if base is None:
            return []
        pairs = self.results.evaluations_by_pair
        return [d for ev in self.results.evaluations
                if ev.detector != base and (base, ev.dataset) in pairs
                for d in self.comparison(ev.detector, base, ev.dataset)]

    def floors_mismatch(self, check: Check) -> str | None:
        """Why the limit applied to ``check`` may not fit: it was made with another
        detector version or threshold (or for the baseline, see :meth:`limit`)."""
        owner = floors_owner(self.floors, check, self.settings.baseline)
        ev = self.results.evaluations_by_pair.get((check.detector, check.dataset))
        if owner is None or ev is None:
            return None
        return made_with_mismatch(self.settings.floors, self.made_with, owner, ev.version,
                                  ev.threshold, applied_to=check.detector)

    def floor_warnings(self) -> list[str]:
        """One line per computed detector whose limits were made with something else."""
        out: list[str] = []
        for ev in self.results.evaluations:
            for check in self.floors:
                if check.dataset.partition("@")[0] != ev.dataset.partition("@")[0]:
                    continue
                why = self.floors_mismatch(replace(check, detector=ev.detector,
                                                   dataset=ev.dataset))
                if why and why not in out:
                    out.append(why)
                break
        return out
