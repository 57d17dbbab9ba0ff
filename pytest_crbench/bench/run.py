"""The state of one benchmark run: detectors, prepared datasets, evaluations, outputs.

Everything is computed lazily and once: the first test that needs deepCR on ``sim``
runs it, every later test reads the cached :class:`~pytest_crbench.bench.evaluation.Evaluation`
and its :class:`~pytest_crbench.bench.analysis.Analysis` (photometry, CR density, stability:
computed in the same pass over the exposures, see :mod:`pytest_crbench.bench.analysis`).
At the end :meth:`BenchSession.finish` writes the JSON, the report and the generated
floors, each once and atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_crbench.bench.settings import Settings
from pytest_crbench.errors import CRBenchError
from pytest_crbench.bench.evaluation import Evaluation, PreparedDataset, evaluate, prepare
from pytest_crbench.bench.floors import (PHOTOMETRY_METRICS, FloorKey, PhotometryKey, SmokeKey, StabilityKey,
                     floor_from_observed, limit_from_observed, load_floors, write_floors)
from pytest_crbench.science.metrics import METRICS, scores


@dataclass
class Outcome:
    key: FloorKey
    value: float | None
    floor: float | None
    passed: bool
    reason: str | None = None
    message: str | None = None  # failure text (photometry/stability items)
    skip: str | None = None  # the item cannot assert anything (stability, < 3 groups)


@dataclass
class BenchSession:
    settings: Settings
    floors: dict[FloorKey, float] = field(default_factory=dict)
    _detectors: dict[str, Any] = field(default_factory=dict)
    _datasets: dict[str, Any] = field(default_factory=dict)
    _prepared: dict[str, PreparedDataset] = field(default_factory=dict)
    _evaluations: dict[tuple[str, str], Evaluation] = field(default_factory=dict)
    _catalogs: dict[str, Any] = field(default_factory=dict)
    _analyses: dict[tuple[str, str], Any] = field(default_factory=dict)
    _summaries: dict[str, dict] = field(default_factory=dict)
    _smoke: dict[tuple[str, str], dict] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    _errors: dict[Any, BaseException] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    _engine: Any = None  # the DaskEngine of --crbench-scheduler, started on first use
    _distributed: dict[str, Any] = field(default_factory=dict)

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
        from pytest_crbench.detectors.specs import load_detector

        return self._cached(self._detectors, spec, lambda: load_detector(
            spec, threshold=self.settings.threshold, device=self.settings.device,
            precision=self.settings.precision))

    def dataset(self, name: str):
        """The loaded :class:`~pytest_crbench.science.exposures.Dataset` (built or fetched once)."""
        from pytest_crbench.datasets.loading import load_dataset

        return self._cached(self._datasets, name, lambda: load_dataset(
            name, data_dir=self.settings.data_dir, offline=self.settings.offline))

    def prepared(self, dataset: str) -> PreparedDataset:
        def make():
            prepared = prepare(self.dataset(dataset), self.settings.k)
            self._summaries[dataset] = prepared.summary()
            return prepared

        return self._cached(self._prepared, dataset, make)

    def catalog(self, dataset: str):
        """The stars of every exposure of ``dataset`` (found once, for every detector)."""
        from pytest_crbench.bench.analysis import find_catalog

        return self._cached(self._catalogs, dataset,
                            lambda: find_catalog(self.prepared(dataset)))

    def engine(self):
        """The Dask engine of ``--crbench-scheduler`` (connected on first use)."""
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
        """Every configured detector on ``dataset`` on the Dask cluster, in one pass that
        shares the references (:mod:`pytest_crbench.bench.distributed`)."""
        from pytest_crbench.bench.distributed import WorkerOptions

        def make():
            result = self.engine().evaluate(
                dataset, list(self.settings.model), WorkerOptions.from_settings(self.settings),
                anomalous_level=self.settings.anomalous_level)
            self._summaries[dataset] = result.summary
            for spec, note in result.notes.items():
                self.notes[(spec, dataset)] = note
            for spec, analysis in result.analyses.items():
                self._analyses[(spec, dataset)] = analysis
            return result

        return self._cached(self._distributed, dataset, make)

    def evaluation(self, spec: str, dataset: str) -> Evaluation:
        """Pixel scores of ``spec`` on ``dataset``; photometry, density and stability are
        computed in the same pass (the cleaned images are never kept)."""
        from pytest_crbench.bench.analysis import ExposurePhotometry, analyse

        if self.settings.scheduler is not None and spec in self.settings.model:
            def make_distributed():
                result = self._distributed_run(dataset)
                if spec in result.errors:
                    raise result.errors[spec]
                return result.evaluations[spec]

            return self._cached(self._evaluations, (spec, dataset), make_distributed)

        def make():
            detector, prepared = self.detector(spec), self.prepared(dataset)
            collector = ExposurePhotometry(self.catalog(dataset),
                                           fill_method=self.settings.fill_method)
            ev = evaluate(detector, prepared, spec=spec, on_exposure=collector)
            from pytest_crbench.datasets.loading import domain_note

            note = domain_note(detector, prepared.dataset)
            if note:
                self.notes[(spec, dataset)] = note
            self._analyses[(spec, dataset)] = analyse(
                ev, prepared, collector, anomalous_level=self.settings.anomalous_level)
            return ev

        return self._cached(self._evaluations, (spec, dataset), make)

    def analysis(self, spec: str, dataset: str):
        self.evaluation(spec, dataset)
        return self._analyses[(spec, dataset)]

    # -- the floor assertion behind each standard test item --
    def smoke(self, spec: str, dataset: str) -> dict:
        """Run ``spec`` on every exposure of a smoke-only dataset (nothing is scored)."""
        from pytest_crbench.datasets.loading import domain_note
        from pytest_crbench.bench.evaluation import run_detector

        def make():
            data = self.dataset(dataset)
            det = self.detector(spec)
            rows = []
            for group, exp in data.exposures():
                t0 = time.perf_counter()
                pred = run_detector(det, exp, exp.bad_pixels, spec=spec)
                rows.append({"group": group.name, "exposure": exp.name,
                             "shape": list(exp.shape),
                             "flagged_fraction": float(pred.mask.mean()),
                             "seconds": time.perf_counter() - t0})
            note = domain_note(det, data)
            if note:
                self.notes[(spec, dataset)] = note
            return {"detector": spec, "version": str(getattr(det, "version", "")),
                    "dataset": dataset, "exposures": rows, "note": note}

        return self._cached(self._smoke, (spec, dataset), make)

    def check(self, key) -> Outcome:
        if isinstance(key, SmokeKey):
            result = self.smoke(key.detector, key.dataset)
            outcome = Outcome(key, None, None, bool(result["exposures"]),
                              message=f"{key}: the dataset has no exposure")
            self.outcomes.append(outcome)
            return outcome
        if isinstance(key, PhotometryKey):
            outcome = self._check_photometry(key)
        elif isinstance(key, StabilityKey):
            outcome = self._check_stability(key)
        else:
            outcome = self._check_pixels(key)
        self.outcomes.append(outcome)
        return outcome

    def _check_pixels(self, key: FloorKey) -> Outcome:
        ev = self.evaluation(key.detector, key.dataset)
        score = scores(ev.pooled(key.region))[key.metric]
        floor = self.floors.get(key)
        if score.value is None:
            outcome = Outcome(key, None, floor, floor is None, score.reason)
        elif floor is None:
            outcome = Outcome(key, score.value, None, True)
        else:
            outcome = Outcome(key, score.value, floor, score.value >= floor)
        return outcome

    def _check_photometry(self, key: PhotometryKey) -> Outcome:
        a = self.analysis(key.detector, key.dataset)
        if a.error:
            raise CRBenchError(a.error)
        limit = self.floors.get(key)
        block = a.summary_block(key.bin) or {}
        value = block.get(key.field)
        if value is None:
            reason = (block.get("reasons") or {}).get(key.field) or f"no {key.bin} px stars"
            return Outcome(key, None, limit, limit is None, reason,
                           message=None if limit is None else
                           f"{key}: fraction is undefined ({reason}) but has limit "
                           f"{limit:.3f}")
        if limit is None:
            return Outcome(key, value, None, True)
        if key.kind == "max":
            passed = value <= limit
            msg = (f"{key}: observed {value:.4f} is above ceiling {limit:.3f} "
                   f"(over by {value - limit:.4f}; {block.get('n_contaminated', '?')} "
                   "contaminated stars)")
        else:
            passed = value >= limit
            msg = (f"{key}: observed {value:.4f} is below floor {limit:.3f} "
                   f"(short by {limit - value:.4f}; {block.get('n_contaminated', '?')} "
                   "contaminated stars)")
        return Outcome(key, value, limit, passed, message=None if passed else msg)

    def _check_stability(self, key: StabilityKey) -> Outcome:
        st = self.analysis(key.detector, key.dataset).stability
        band = st[key.quantity]
        if band.get("reason"):
            return Outcome(key, None, None, True, band["reason"],
                           skip=f"{key}: not assessed: {band['reason']}")
        outliers = band["outliers"]
        if not outliers:
            return Outcome(key, None, None, True)
        loo = st.get("leave_one_out", {}).get(key.quantity, {})
        fmt = (lambda v: f"{v:.4f}") if key.quantity == "rms" else (lambda v: f"{100 * v:.1f} %")
        parts = []
        for g in outliers:
            b = loo.get(g)
            if b is None:
                parts.append(g)
                continue
            parts.append(f"{g} = {fmt(b['value'])} outside {fmt(b['mean'])} ± "
                         f"{b['factor']:.2f}·{fmt(b['std'])} = [{fmt(b['lower'])}, "
                         f"{fmt(b['upper'])}]")
        msg = (f"{key}: {len(outliers)} group(s) outside the {st['nsigma']:g}σ-equivalent "
               f"prediction interval of the other groups (region {st.get('region')}, "
               f"{band['n']} groups): "
               + "; ".join(parts))
        return Outcome(key, None, None, False, message=msg)

    @property
    def evaluations(self) -> list[Evaluation]:
        """Evaluations in the configured order (dataset, then detector): deterministic."""
        ds, det = self.settings.dataset, self.settings.model

        def order(key):
            return (ds.index(key[1]) if key[1] in ds else len(ds),
                    det.index(key[0]) if key[0] in det else len(det), key)

        return [self._evaluations[k] for k in sorted(self._evaluations, key=order)]

    @property
    def analyses(self) -> list:
        """Analyses in the order of :attr:`evaluations`."""
        return [self._analyses[(e.detector, e.dataset)] for e in self.evaluations
                if (e.detector, e.dataset) in self._analyses]

    @property
    def dataset_summaries(self) -> list[dict]:
        names = self.settings.dataset
        return [self._summaries[n] for n in sorted(
            self._summaries, key=lambda n: (names.index(n) if n in names else len(names), n))]

    # -- pytest-xdist: workers send records, the controller merges and writes once --
    @property
    def smoke_results(self) -> list[dict]:
        return [self._smoke[k] for k in sorted(self._smoke)]

    def worker_record(self) -> dict:
        return {"smoke": self.smoke_results, "notes": [[*k, v] for k, v in self.notes.items()],
                "evaluations": [ev.to_record() for ev in self.evaluations],
                "analyses": [a.to_record() for a in self.analyses],
                "datasets": self.dataset_summaries}

    def merge(self, record: dict) -> None:
        for sm in record.get("smoke", []):
            self._smoke.setdefault((sm["detector"], sm["dataset"]), sm)
        for spec, dataset, note in record.get("notes", []):
            self.notes.setdefault((spec, dataset), note)
        for ev in record.get("evaluations", []):
            self._evaluations.setdefault((ev["detector"], ev["dataset"]),
                                         Evaluation.from_record(ev))
        for summary in record.get("datasets", []):
            self._summaries.setdefault(summary["name"], summary)
        if record.get("analyses"):
            from pytest_crbench.bench.analysis import Analysis

            for a in record["analyses"]:
                self._analyses.setdefault((a["detector"], a["dataset"]),
                                          Analysis.from_record(a))

    def write_masks(self) -> list[str]:
        """Mask files of the evaluations computed in this process."""
        from pytest_crbench.bench.results import write_masks

        if self.settings.save_masks is None:
            return []
        n = 0
        for (spec, dataset), ev in self._evaluations.items():
            if dataset in self._prepared and all(e.mask is not None for e in ev.exposures):
                n += len(write_masks(self.settings.save_masks, ev, self._prepared[dataset]))
        return [f"mask files: {n} in {self.settings.save_masks}"] if n else []

    def finish(self) -> list[str]:
        """Write the results JSON and generated floors; returns one line per output."""
        from pytest_crbench.bench.results import results_document, write_json

        lines = []
        s = self.settings
        if s.json is not None and (self.evaluations or self._smoke):
            extra = {"smoke": self.smoke_results,
                     "notes": [{"detector": k[0], "dataset": k[1], "note": v}
                               for k, v in sorted(self.notes.items())]}
            doc = results_document(self.evaluations, self.dataset_summaries, s.as_dict(),
                                   extra=extra, analyses=self.analyses)
            lines.append(f"results JSON: {write_json(s.json, doc)}")
        if s.generate_floors is not None and self.evaluations:
            new = {}
            for ev in self.evaluations:
                for region in ev.regions:
                    for metric, score in scores(ev.pooled(region)).items():
                        if score.value is not None:
                            key = FloorKey(ev.detector, ev.dataset, region, metric)
                            new[key] = floor_from_observed(score.value, s.floors_margin)
            for a in self.analyses:
                for size_bin in ["all"] + list((a.photometry or {}).get("by_size", {})):
                    block = a.summary_block(size_bin) or {}
                    for metric, (fld, _) in PHOTOMETRY_METRICS.items():
                        key = PhotometryKey(a.detector, a.dataset, size_bin, metric)
                        if block.get(fld) is not None:
                            new[key] = limit_from_observed(key, block[fld], s.floors_margin)
            path = write_floors(s.generate_floors, new, header=(
                f"Floors generated by pytest-crbench from a run: observed score minus "
                f"{s.floors_margin:g}, rounded down\n(max_* photometric ceilings: observed "
                f"plus {s.floors_margin:g}, rounded up)."))
            lines.append(f"floors written: {path} ({len(new)} floors)")
        if s.report is not None and self.evaluations:
            from pytest_crbench.bench.analysis import report_results
            from pytest_crbench.reporting.html import write_report

            meta = {"detectors": ", ".join(dict.fromkeys(e.detector for e in self.evaluations)),
                    "datasets": ", ".join(dict.fromkeys(e.dataset for e in self.evaluations)),
                    "fill method": s.fill_method,
                    "anomalous level": f"{s.anomalous_level:g}"}
            html_path, _ = write_report(s.report, report_results(
                self.evaluations, self.analyses, meta))
            lines.append(f"report: {html_path} (and report.md)")
        return lines
