"""Evaluation on a Dask cluster (``--crbench-scheduler local:N`` or ``tcp://host:port``).

The per-exposure work of :mod:`pytest_crbench.bench.evaluation` and
:mod:`pytest_crbench.bench.analysis` — reference, regions, detector inference, pixel
counts, photometry, gallery stamps — runs on the workers; only small records travel back
to the client: counts per region (against the reference and, with ``CRTRUTH``, the
truth classes, with the excluded pixels), the threshold-sweep counts of detectors with
probabilities, the star photometry table, at most ``GALLERY_SIZE`` stamp sets, the
per-region reference-audit rows and the note of a mostly ignored exposure.  The client assembles them with the very functions a serial
run uses (:func:`~pytest_crbench.bench.analysis.add_group_stars`,
:meth:`~pytest_crbench.bench.analysis.ExposurePhotometry.add`,
:func:`~pytest_crbench.bench.analysis.analyse`), in exposure order, so the results do
not depend on the number of workers or on which worker ran what: the results JSON of a
distributed run equals a serial run's except for timing (tested on ``sim-tiny``).

The graph, per dataset (every configured detector shares the references):

1. ``prepare``: per exposure, :func:`~pytest_crbench.bench.evaluation.prepare_exposure`
   on a worker.  For a simulated preset only that exposure is read into memory; the
   group's others are read row by row by the strip-wise reference (a real dataset's
   groups are read whole, see :func:`_group`).  The prepared exposure stays on that
   worker.
2. ``stars``: per exposure, :func:`~pytest_crbench.science.photometry.find_stars` on
   its clean reference, where it lies; the small star lists come to the client, which
   matches each group (:func:`~pytest_crbench.bench.analysis.add_group_stars`).
3. ``score``: per detector and exposure, on the worker that holds the prepared exposure
   (Dask's data locality): inference, counts, photometry.  Detectors are loaded once per
   worker process and kept (:func:`_detector`), never per task.

At most ``window`` groups are in flight; a group's prepared exposures are released as
soon as every detector has scored them, which bounds the memory of each worker.  Chips
of more than :data:`FOCUS_PIXELS` (a CSST chip: 85 Mpix) go further: a prepared chip is
never kept between tasks (step 3 prepares it again and runs every detector on it in one
task), so a worker holds one prepared chip at a time, at the price of computing each
reference twice.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError

__all__ = ["WorkerOptions", "DaskEngine", "DistributedResult", "CONNECT_TIMEOUT", "worker_loads"]

#: Seconds to wait for a scheduler address to answer before giving up.
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs to rebuild datasets and detectors (plain and picklable)."""

    data_dir: str | None
    offline: bool
    ks: tuple[int, ...]
    threshold: float | None
    device: str
    precision: str
    fill_method: str
    reference: Any = None  # science.reference.ReferenceConfig (None: the default)
    truth_snr: float = 5.0
    lock_timeout: float | None = None

    @classmethod
    def from_settings(cls, settings) -> "WorkerOptions":
        return cls(None if settings.data_dir is None else str(settings.data_dir),
                   bool(settings.offline), tuple(sorted(settings.k)), settings.threshold,
                   settings.device, settings.precision, settings.fill_method,
                   settings.reference_config(), float(settings.truth_snr),
                   settings.lock_timeout)


# ------------------------------------------------------------------ worker-side state
# One dict per worker process: detectors by (spec, threshold, device, precision) and
# the last loaded groups.  Module globals live as long as the worker does.
_STATE: dict[str, Any] = {"detectors": {}, "groups": {}, "loads": {}}
#: Groups of a real dataset kept per worker (simulated presets' groups are never kept).
_GROUPS_KEPT = 2


def _detector(spec: str, opts: WorkerOptions):
    from pytest_crbench.detectors.specs import load_detector
    from pytest_crbench.detectors.torch_runtime import tune_malloc

    tune_malloc(force=True)  # Dask's nanny set a 64 kB trim threshold for this worker

    key = (spec, opts.threshold, opts.device, opts.precision)
    cache = _STATE["detectors"]
    if key not in cache:
        cache[key] = load_detector(spec, threshold=opts.threshold, device=opts.device,
                                   precision=opts.precision)
        _STATE["loads"][spec] = _STATE["loads"].get(spec, 0) + 1
    return cache[key]


def worker_loads() -> dict[str, int]:
    """Detector loads in this worker process, by spec (``client.run(worker_loads)``)."""
    return dict(_STATE["loads"])


#: Chips larger than this (pixels) are not kept prepared between tasks: each is prepared
#: again where all its detectors run (a CSST chip is 85 Mpix).
FOCUS_PIXELS = 4096 * 4096


def _group(dataset: str, index: int, opts: WorkerOptions, focus: int):
    """Group ``index`` as the preparation of its exposure ``focus`` needs it.  A simulated
    preset's group is read around that exposure (its other exposures are read row by
    row by the strip-wise reference) and not kept: a worker never holds a whole group.
    A real dataset's files are read whole, and its last :data:`_GROUPS_KEPT` groups are
    kept for the group's other exposures."""
    from pytest_crbench.datasets.loading import load_group
    from pytest_crbench.datasets.simulate import is_simulated

    load = dict(data_dir=opts.data_dir, offline=opts.offline, lock_timeout=opts.lock_timeout)
    if is_simulated(dataset):
        return load_group(dataset, index, focus=focus, **load)
    cache = _STATE["groups"]
    key = (dataset, index, opts.data_dir)
    if key not in cache:
        while len(cache) >= _GROUPS_KEPT:
            cache.pop(next(iter(cache)))
        cache[key] = load_group(dataset, index, **load)
    return cache[key]


def _layout_task(dataset: str, opts: WorkerOptions):
    from pytest_crbench.datasets.loading import dataset_layout

    ds, groups = dataset_layout(dataset, data_dir=opts.data_dir, offline=opts.offline,
                                lock_timeout=opts.lock_timeout)
    return {"name": ds.name, "version": ds.version, "provenance": ds.provenance,
            "groups": groups}


def _prepare_task(dataset: str, gi: int, ei: int, opts: WorkerOptions):
    from pytest_crbench.bench.evaluation import prepare_exposure

    return prepare_exposure(_group(dataset, gi, opts, ei), ei, opts.ks, opts.reference,
                            opts.truth_snr)


def _stars_task(prepared, config) -> dict:
    """The small facts of a prepared exposure: audit rows, note, truth label, star list
    (or the error), and what the catalog and the domain note need of the exposure."""
    from pytest_crbench.science.photometry import find_stars, star_list_name

    pe, audit, note = prepared
    try:
        stars: Any = find_stars(pe.clean, pe.ignore, config,
                                name=star_list_name(pe.group.name, pe.exposure.name),
                                bkg=pe.background)
    except CRBenchDataError as exc:
        stars = exc
    e = pe.exposure
    return {"audit": audit, "note": note,
            "truth": None if pe.truth is None else pe.truth.label(),
            "stars": stars, "name": e.name, "wcs_header": e.wcs_header,
            "instrument": e.instrument, "detector": e.detector}


def _prepare_stars_task(dataset: str, gi: int, ei: int, opts: WorkerOptions, config) -> dict:
    """:func:`_stars_task` of an exposure prepared here and dropped again (large chips:
    :func:`_score_big_task` prepares it a second time rather than keeping it)."""
    prepared = _prepare_task(dataset, gi, ei, opts)
    prepared[0].exposure.crtruth = None  # audited already; this worker's own copy
    return _stars_task(prepared, config)


def _score_big_task(specs: list[str], dataset: str, gi: int, ei: int, opts: WorkerOptions,
                    stars, catalog_config) -> dict:
    """Every detector on one large chip in one task: the chip is prepared once more here
    and only one prepared chip is ever held per worker.  Returns {spec: record or the
    exception of that detector}."""
    prepared = _prepare_task(dataset, gi, ei, opts)
    pe = prepared[0]
    pe.exposure.crtruth = None  # audited already; this worker's own copy
    out: dict[str, Any] = {}
    for spec in specs:
        try:
            out[spec] = _score_task(spec, prepared, stars, catalog_config, opts)
        except Exception as exc:  # one detector's failure is that detector's
            out[spec] = exc
    return out


def _score_one_task(spec: str, prepared, stars, catalog_config, opts: WorkerOptions) -> dict:
    return {spec: _score_task(spec, prepared, stars, catalog_config, opts)}


def _score_task(spec: str, prepared, stars, catalog_config, opts: WorkerOptions) -> dict:
    from pytest_crbench.bench.analysis import ExposurePhotometry, StarCatalog
    from pytest_crbench.bench.evaluation import exposure_sweep, score_exposure

    pe = prepared[0]
    det = _detector(spec, opts)
    result, pred = score_exposure(det, pe, opts.ks, spec=spec)
    result.mask = None  # masks stay on the worker
    sweep = exposure_sweep(pred, pe, opts.ks)
    pred.probability = None  # counted; photometry needs the mask and the cleaned image
    collector = ExposurePhotometry(StarCatalog({}, catalog_config),
                                   fill_method=opts.fill_method)
    return {"result": result, "photometry": collector.measure(pe, pred, stars),
            "sweep": None if sweep is None else sweep.to_record(),
            "threshold": getattr(det, "threshold", None),
            "version": str(getattr(det, "version", "")), "name": getattr(det, "name", spec),
            "domain": getattr(det, "domain", None)}


# ------------------------------------------------------------------ client side

@dataclass
class DistributedResult:
    """What a serial run computes for one dataset, assembled from worker records."""

    summary: Any  # the DatasetSummary of a serial run's prepare()
    evaluations: dict[str, Any] = field(default_factory=dict)  # spec -> Evaluation
    analyses: dict[str, Any] = field(default_factory=dict)  # spec -> Analysis
    notes: dict[str, str] = field(default_factory=dict)  # spec -> domain note
    errors: dict[str, BaseException] = field(default_factory=dict)  # spec -> its failure
    seconds: float = 0.0


class DaskEngine:
    """A Dask client (and, for ``local:N``, the LocalCluster it started).

    Use as a context manager or call :meth:`close`; both shut a LocalCluster down.
    """

    def __init__(self, address: str, *, option: str = "--crbench-scheduler",
                 timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise CRBenchConfigError(
                f"{option} {address}: Dask is not installed ({exc}); install it with "
                "pip install 'pytest-crbench[dask]'") from None
        import logging

        self.address = address
        self.cluster = None
        if address.startswith("local:"):
            n = int(address.split(":", 1)[1])
            cores = os.cpu_count() or 1
            threads = str(max(1, cores // n))
            # each worker process gets its share of the cores for torch/OpenMP/BLAS, and
            # the allocator tuning a CPU detector gets in this process (Dask's default
            # trim threshold of 64 kB made deepCR page-fault at twice its time)
            from pytest_crbench.detectors.torch_runtime import MALLOC_ENV

            env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                   "OPENBLAS_NUM_THREADS": threads, **MALLOC_ENV}
            saved = dict(os.environ)
            try:
                self.cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                    # random loopback ports: a second cluster never fights over :8787
                    dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR, env=env)
            finally:
                # Dask's nannies leave their workers' settings (MALLOC_TRIM_THRESHOLD_,
                # OMP_NUM_THREADS …) in this process's environment: put it back
                os.environ.clear()
                os.environ.update(saved)
            self.client = distributed.Client(self.cluster, timeout=f"{timeout}s")
        else:
            try:
                self.client = distributed.Client(address, timeout=f"{timeout}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise CRBenchConfigError(
                    f"{option} {address}: no Dask scheduler answered within {timeout:g} s "
                    f"({type(exc).__name__}: {exc})") from None

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info()["workers"])

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> "DaskEngine":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def evaluate(self, dataset: str, specs: list[str], opts: WorkerOptions, *,
                 anomalous_level: float = 0.1, window: int = 2) -> DistributedResult:
        """Every detector of ``specs`` on ``dataset``; results as a serial run's."""
        from pytest_crbench.science.photometry import PhotometryConfig

        t0 = time.perf_counter()
        layout = self.client.submit(_layout_task, dataset, opts, pure=False).result()
        run = _Assembly(self.client, dataset, list(specs), opts, layout["groups"],
                        PhotometryConfig())
        groups = layout["groups"]
        for gi in range(min(window, len(groups))):
            run.submit_group(gi)
        pending: list[tuple[list, list]] = []  # per group in flight: prepared, scores
        for gi in range(len(groups)):
            pending.append(run.score_group(gi))
            while len(pending) >= max(1, window):
                run.drain(*pending.pop(0))
            if gi + window < len(groups):
                run.submit_group(gi + window)
        for entry in pending:
            run.drain(*entry)
        out = run.finish(layout, anomalous_level)
        out.seconds = time.perf_counter() - t0
        return out


class _Assembly:
    """The client side of one dataset's distributed evaluation: submits each group's
    tasks, takes their small records in exposure order, and assembles them with the
    functions a serial run uses."""

    def __init__(self, client, dataset: str, specs: list[str], opts: WorkerOptions,
                 groups: list[dict], config) -> None:
        from pytest_crbench.bench.analysis import StarCatalog

        self.client, self.dataset, self.specs, self.opts = client, dataset, specs, opts
        self.groups, self.config = groups, config
        self.catalog = StarCatalog({}, config)
        self.audit: list[dict] = []
        self.notes: list[str] = []
        self.truth_label: str | None = None
        self.seen: set = set()
        self.outcomes: dict[str, list] = {spec: [] for spec in specs}
        self.errors: dict[str, BaseException] = {}
        self.submitted: dict[int, tuple[list, list]] = {}

    def big(self, gi: int) -> bool:
        shape = self.groups[gi].get("shape")
        return shape is not None and shape[0] * shape[1] > FOCUS_PIXELS

    def submit_group(self, gi: int) -> None:
        """Prepare (and find the stars of) every exposure of group ``gi``."""
        submit, ds, opts = self.client.submit, self.dataset, self.opts
        n = len(self.groups[gi]["exposures"])
        if self.big(gi):
            self.submitted[gi] = [], [submit(_prepare_stars_task, ds, gi, ei, opts,
                                             self.config, pure=False, priority=-gi)
                                      for ei in range(n)]
            return
        prepared = [submit(_prepare_task, ds, gi, ei, opts, pure=False, priority=-gi)
                    for ei in range(n)]
        self.submitted[gi] = prepared, [submit(_stars_task, p, self.config, pure=False,
                                               priority=-gi) for p in prepared]

    def score_group(self, gi: int) -> tuple[list, list]:
        """Take group ``gi``'s small records (in exposure order, as ``prepare()``), match
        its stars, and submit its scoring: ``(prepared futures, score futures)``."""
        from pytest_crbench.bench.analysis import add_group_stars

        g = self.groups[gi]
        prepared, small_futures = self.submitted.pop(gi)
        small = self.client.gather(small_futures)
        for s in small:
            self.audit.extend(s["audit"])
            if s["note"] is not None:
                self.notes.append(s["note"])
            self.truth_label = self.truth_label or s["truth"]
        self.seen.update((s["instrument"], s["detector"]) for s in small)
        lists = []
        for s in small:
            lists.append(s["stars"])
            if isinstance(s["stars"], BaseException):
                break  # as a serial run: the first exposure without stars decides
        exposures = [SimpleNamespace(name=s["name"], wcs_header=s["wcs_header"])
                     for s in small]
        add_group_stars(self.catalog, SimpleNamespace(name=g["name"], kind=g["kind"]),
                        exposures, lists)
        stars = [self.catalog.stars.get((g["name"], s["name"])) for s in small]
        submit, ds, opts, config = self.client.submit, self.dataset, self.opts, self.config
        if self.big(gi):
            return prepared, [(None, submit(_score_big_task, self.specs, ds, gi, ei, opts, st,
                                            config, pure=False, priority=-gi))
                              for ei, st in enumerate(stars)]
        return prepared, [(spec, submit(_score_one_task, spec, p, st, config, opts,
                                        pure=False, priority=-gi))
                          for p, st in zip(prepared, stars) for spec in self.specs]

    def drain(self, prepared: list, scores: list) -> None:
        """Take one group's score records (each detector's failure is that detector's)
        and release its prepared exposures on the workers."""
        for spec_of, f in scores:  # per exposure (large chips) or per (spec, exposure)
            try:
                rows = f.result()
            except Exception as exc:
                rows = {spec_of: exc}
            for spec, row in rows.items():
                if isinstance(row, BaseException):
                    self.errors.setdefault(spec, row)
                elif spec not in self.errors:
                    self.outcomes[spec].append(row)
        for f in prepared:
            f.release()

    def finish(self, layout: dict, anomalous_level: float) -> DistributedResult:
        """The evaluations and analyses of every detector, as a serial run's."""
        from pytest_crbench.bench.analysis import finish_catalog
        from pytest_crbench.bench.evaluation import PreparedDataset
        from pytest_crbench.science.exposures import Dataset

        finish_catalog(self.catalog, self.dataset)
        opts = self.opts
        ds = Dataset(layout["name"], [], layout["version"], layout["provenance"])
        summary_prepared = PreparedDataset(ds, sorted(opts.ks), [], self.audit,
                                           notes=self.notes, truth_snr=opts.truth_snr)
        if opts.reference is not None:
            summary_prepared.reference = opts.reference
        # (no exposures are held here: the truth is named from the workers' records)
        summary = dataclasses.replace(summary_prepared.summary(),
                                      truth_snr=opts.truth_snr if self.truth_label else None)
        out = DistributedResult(summary, errors=self.errors)
        for spec in self.specs:
            if spec not in self.errors:
                self._add_detector(out, spec, summary_prepared, anomalous_level)
        return out

    def _add_detector(self, out: DistributedResult, spec: str, summary_prepared,
                      anomalous_level: float) -> None:
        from pytest_crbench.bench.analysis import ExposurePhotometry, analyse
        from pytest_crbench.bench.evaluation import Evaluation
        from pytest_crbench.datasets.loading import domain_note_for
        from pytest_crbench.science.sweeps import ThresholdSweep

        rows = self.outcomes[spec]
        ev = Evaluation(spec, rows[0]["version"] if rows else "", self.dataset,
                        summary_prepared.regions,
                        threshold=rows[0]["threshold"] if rows else None,
                        truth=self.truth_label)
        collector = ExposurePhotometry(self.catalog, fill_method=self.opts.fill_method)
        for row in rows:  # in exposure order, as evaluate()
            ev.exposures.append(row["result"])
            collector.add(row["photometry"])
            if row["sweep"] is not None:
                sweep = ThresholdSweep.from_record(row["sweep"])
                ev.sweep = sweep if ev.sweep is None else ev.sweep + sweep
        out.evaluations[spec] = ev
        out.analyses[spec] = analyse(ev, summary_prepared, collector,
                                     anomalous_level=anomalous_level)
        if rows:
            note = domain_note_for(rows[0]["name"], rows[0]["domain"], self.dataset, self.seen)
            if note:
                out.notes[spec] = note
