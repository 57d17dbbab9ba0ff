"""The Dask engine: a real LocalCluster on loopback gives the serial run's JSON."""

from __future__ import annotations

import json
import socket
import time

import pytest

pytest.importorskip("distributed")

import pytest_crbench
from pytest_crbench.bench.distributed import DaskEngine, worker_loads
from pytest_crbench.bench.run import BenchSession
from pytest_crbench.bench.settings import read_tool_table, resolve
from pytest_crbench.cli import main
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.reporting.outputs import write_outputs

SPECS = ["deepcr:ACS-WFC", "astroscrappy"]


_ENV_BEFORE_CLUSTERS = {k: __import__("os").environ.get(k) for k in (
    "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS")}


@pytest.fixture(scope="module")
def local2():
    """One LocalCluster of 2 worker processes for the module, shut down afterwards."""
    with DaskEngine("local:2") as engine:
        yield engine


def _run(path, data_dir, engine=None, **flags):
    settings = resolve({"model": SPECS, "dataset": ["sim-tiny"], "json": str(path),
                        "data_dir": str(data_dir), **flags}, {}, {})
    bench = BenchSession(settings)
    bench._engine = engine  # the module's cluster (None: serial)
    try:
        for spec in SPECS:
            bench.evaluation(spec, "sim-tiny")
        write_outputs(bench)
    finally:
        bench._engine = None  # the fixture shuts the cluster down
    return json.loads(path.read_text())


def _without_timing(doc):
    doc = dict(doc)
    doc.pop("timing")
    settings = doc["provenance"]["settings"]
    for key in ("json", "scheduler"):
        settings.pop(key)
    return doc


def test_local2_json_equals_serial_json(tmp_path, crbench_data_dir, local2):
    workers = local2.client.run(lambda: pytest_crbench.__file__)
    assert len(workers) == 2 and set(workers.values()) == {pytest_crbench.__file__}
    serial = _run(tmp_path / "serial.json", crbench_data_dir)
    dask = _run(tmp_path / "dask.json", crbench_data_dir, local2, scheduler="local:2")
    assert dask["provenance"]["settings"]["scheduler"] == "local:2"
    assert serial["timing"].keys() == dask["timing"].keys()
    assert _without_timing(dask) == _without_timing(serial)
    assert dask["stars"] and dask["scores"] and dask["reference_audit"]
    # each worker loaded each detector at most once, however many exposures it scored
    loads = local2.client.run(worker_loads)
    for per_worker in loads.values():
        assert set(per_worker) <= set(SPECS) and all(n == 1 for n in per_worker.values())
    assert sum(n for w in loads.values() for n in w.values()) >= len(SPECS)


def test_unreachable_scheduler_is_one_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(CRBenchConfigError, match=r"--crbench-scheduler tcp://127\.0\.0\.1:\d+: "
                       r"no Dask scheduler answered within 2 s"):
        DaskEngine(f"tcp://127.0.0.1:{port}", timeout=2)
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("value", ["local:0", "local:x", "local:", "host:8786", "tcp://"])
def test_scheduler_option_rejects_bad_values(value):
    with pytest.raises(CRBenchConfigError, match="--crbench-scheduler: expected local:N|"
                       "--crbench-scheduler: local:N needs"):
        resolve({"scheduler": value}, {}, {})


def test_scheduler_from_tool_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.crbench]\nscheduler = "tcp://10.0.0.5:8786"\n'
                                             'precision = "bf16"\n')
    path = tmp_path / "pyproject.toml"
    s = resolve({}, read_tool_table(path), {}, tool_file=path)
    assert s.scheduler == "tcp://10.0.0.5:8786" and s.precision == "bf16"
    assert "[tool.crbench] scheduler" in s.origin["scheduler"]
    assert resolve({}, {}, {"scheduler": "local:3"}).scheduler == "local:3"
    assert resolve({}, {}, {}).scheduler is None


def test_cli_evaluate_writes_the_plugins_json(tmp_path, crbench_data_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.crbench]
    serial = _run(tmp_path / "serial.json", crbench_data_dir)
    rc = main(["evaluate", "--model", SPECS[0], "--model", SPECS[1], "--dataset", "sim-tiny",
               "--data-dir", str(crbench_data_dir), "--json", str(tmp_path / "cli.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "results JSON:" in out and "astroscrappy on sim-tiny" in out
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert _without_timing(cli) == _without_timing(serial)


def test_cli_evaluate_fails_on_a_floor(tmp_path, crbench_data_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "floors.toml").write_text(
        'schema = "crbench-floors/1"\n[floors.astroscrappy."sim-tiny".full]\nrecall = 0.999\n')
    rc = main(["evaluate", "--model", "astroscrappy", "--dataset", "sim-tiny",
               "--data-dir", str(crbench_data_dir), "--floors", "floors.toml"])
    assert rc == 1
    assert "FAILED" in capsys.readouterr().err


def test_large_chip_path_gives_the_same_json(tmp_path, crbench_data_dir, local2, monkeypatch):
    """Chips above FOCUS_PIXELS are read one exposure at a time and prepared twice: the
    results do not change (forced here on sim-tiny's 128 x 128 chips)."""
    from pytest_crbench.bench import distributed

    serial = _run(tmp_path / "serial.json", crbench_data_dir)
    monkeypatch.setattr(distributed, "FOCUS_PIXELS", 0)
    dask = _run(tmp_path / "dask.json", crbench_data_dir, local2, scheduler="local:2")
    assert _without_timing(dask) == _without_timing(serial)


def test_dask_records_carry_truth_and_sweeps_as_serial(tmp_path, crbench_data_dir, local2):
    """Truth counts, excluded pixels, threshold sweeps (merged in exposure order) and the
    dataset notes of a distributed run are a serial run's."""
    def evaluations(engine, **flags):
        settings = resolve({"model": SPECS, "dataset": ["sim-tiny"],
                            "data_dir": str(crbench_data_dir), **flags}, {}, {})
        bench = BenchSession(settings)
        bench._engine = engine
        try:
            return {spec: bench.evaluation(spec, "sim-tiny") for spec in SPECS}, \
                bench.results.summaries["sim-tiny"]
        finally:
            bench._engine = None

    def record(ev):
        rec = ev.to_record()
        for e in rec["exposures"]:
            e.pop("seconds")
        return rec

    serial, s_summary = evaluations(None)
    dask, d_summary = evaluations(local2, scheduler="local:2")
    assert serial["deepcr:ACS-WFC"].sweep is not None and serial["deepcr:ACS-WFC"].has_truth
    for spec in SPECS:
        assert record(dask[spec]) == record(serial[spec])
    assert d_summary == s_summary


def test_a_baseline_that_is_no_model_runs_on_the_cluster(tmp_path, crbench_data_dir, local2):
    """--crbench-baseline names a detector the run does not configure: it is evaluated on
    the workers with the models (nothing is loaded or prepared in the client), and its
    scores are a serial run's."""
    flags = {"model": ["astroscrappy"], "baseline": "deepcr:ACS-WFC",
             "dataset": ["sim-tiny"], "data_dir": str(crbench_data_dir)}

    def baseline(engine, **extra):
        bench = BenchSession(resolve({**flags, **extra}, {}, {}))
        bench._engine = engine
        try:
            ev = bench.evaluation("deepcr:ACS-WFC", "sim-tiny")
            return ev, bench
        finally:
            bench._engine = None

    settings = resolve({**flags, "scheduler": "local:2"}, {}, {})
    assert settings.detectors == ["astroscrappy", "deepcr:ACS-WFC"]
    dask, bench = baseline(local2, scheduler="local:2")
    assert not list(bench._detectors.items()) and not list(bench._prepared.items())
    serial, _ = baseline(None)
    assert [e.counts for e in dask.exposures] == [e.counts for e in serial.exposures]


def _allocator_env():
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                                           "OMP_NUM_THREADS")}


def test_local_workers_get_the_tuned_allocator(local2):
    """Dask's default trim threshold (64 kB) would undo the allocator tuning of CPU
    detectors (deepCR ran at half speed): a LocalCluster's workers get this package's
    settings, and their share of the cores."""
    from pytest_crbench.detectors.torch_runtime import MALLOC_ENV

    envs = local2.client.run(_allocator_env)
    assert len(envs) == 2
    for env in envs.values():
        assert {k: env[k] for k in MALLOC_ENV} == MALLOC_ENV
        assert env["OMP_NUM_THREADS"] == str(max(1, (__import__("os").cpu_count() or 1) // 2))
    # and Dask's settings for its workers do not stay in this process's environment
    assert _allocator_env() == _ENV_BEFORE_CLUSTERS
