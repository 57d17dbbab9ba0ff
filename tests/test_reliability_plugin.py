"""Issue 10, the plugin as users run it: user datasets run (case 1), interrupted runs keep
the last good outputs (case 2), floors that match nothing (case 4), bad detector output
(case 5), foreign errors once per (detector, dataset) (case 6), output paths checked at
start (case 7), read-only caches (case 8), hung locks (case 9), usage errors and crashed
xdist workers (case 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import make_project
from test_reliability_data import hold_lock, read_only_command, writable_again, write_group  # noqa: F401

DETECTORS = textwrap.dedent('''
    import os, time
    import numpy as np
    from scipy import ndimage

    def _called(tag):
        path = os.environ.get("CRBENCH_TEST_CALLS")
        if path:
            with open(path, "a") as fh:
                fh.write(tag + "\\n")

    def _good(image, ignore, exposure):
        med = ndimage.median_filter(image, 5)
        noise = np.sqrt(np.maximum(med, 0) + exposure.read_noise ** 2)
        return (image - med) > 6 * noise

    class Det:
        version = "1"

        def __init__(self, name, fn, threshold=None):
            self.name, self._fn, self.threshold = name, fn, threshold

        def detect(self, image, ignore, exposure):
            _called(self.name)
            return self._fn(image, ignore, exposure)

    def make(**kw):
        return Det("good", _good)

    def nan(**kw):
        return Det("nan", lambda im, ig, e: np.full(im.shape, np.nan, np.float32), 0.5)

    def above_one(**kw):
        return Det("above", lambda im, ig, e: np.full(im.shape, 1.5, np.float32), 0.5)

    def boom(**kw):
        def fn(im, ig, e):
            raise RuntimeError("boom")
        return Det("boom", fn)

    def hang(**kw):
        def fn(im, ig, e):
            marker = os.environ.get("CRBENCH_TEST_HANG")
            if marker:
                with open(marker, "w") as fh:
                    fh.write("hanging")
                time.sleep(60)  # interrupted by the test; ends by itself otherwise
            return _good(im, ig, e)
        return Det("hang", fn)

    def crash(**kw):
        def fn(im, ig, e):
            os._exit(3)
        return Det("crash", fn)

    def unloadable(**kw):
        open("/nonexistent/model-weights.pt", "rb")
''')

N_ITEMS = 3 * 4 + 12 + 3  # regions (full, k3, k20) x 4 metrics, photometry, stability


@pytest.fixture
def project(pytester, crbench_data_dir, monkeypatch):
    return make_project(pytester, monkeypatch, crbench_data_dir, DETECTORS)


def lines_with(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


# ------------------------------------------------------------------ case 1


def test_dataset_added_with_crbench_data_add_runs(project, tmp_path, monkeypatch):
    from pytest_crbench.cli import main

    data = tmp_path / "team-data"
    files = write_group(tmp_path / "frames")
    assert main(["data", "add", *map(str, files), "--group", "g1", "--dataset", "team",
                 "--data-dir", str(data)]) == 0
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    result = project.runpytest("--crbench", "--crbench-dataset=team", "--crbench-offline")
    result.assert_outcomes(passed=N_ITEMS - 3, skipped=3)
    result.stdout.fnmatch_lines(["*mydet:make on team*"])


def test_mostly_saturated_exposures_are_a_visible_note(project, tmp_path, monkeypatch):
    """Legal but degenerate data (a low SATURATE ignores most pixels): a note in the
    summary and the JSON, not an error."""
    from pytest_crbench.cli import main

    data = tmp_path / "team-data"
    files = write_group(tmp_path / "frames", saturation=150.0)
    assert main(["data", "add", *map(str, files), "--group", "g1", "--dataset", "team",
                 "--data-dir", str(data)]) == 0
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    out = project.path / "res.json"
    result = project.runpytest("--crbench", "--crbench-dataset=team", "--crbench-offline",
                               f"--crbench-json={out}")
    # (with most pixels ignored no star is left for photometry: those items fail)
    result.assert_outcomes(passed=12, failed=12, skipped=3)
    result.stdout.fnmatch_lines([
        "note (team): *e0_2_flt.fits[[]SCI,1[]]: * % of the pixels are ignored (DQ != 0, or "
        "near a pixel above the saturation level 150 e-): its scores rest on the other * %"])
    notes = json.loads(out.read_text())["notes"]
    assert any(n["dataset"] == "team" and "of the pixels are ignored" in n["note"]
               for n in notes)


# ------------------------------------------------------------------ case 10: usage errors


@pytest.mark.parametrize("args, message", [
    (["--crbench-dataset=simm"],
     "ERROR: pytest-crbench: --crbench-dataset: unknown dataset 'simm'; did you mean 'sim'? "
     "(available: *"),
    (["--crbench-model=deepcr:NOPE"],
     "ERROR: pytest-crbench: unknown deepCR mask model 'NOPE'; valid mask models: ACS-WFC*"),
    (["--crbench-model=mydet:unloadable"],
     "ERROR: pytest-crbench: detector factory 'mydet:unloadable' raised FileNotFoundError: "
     "*/nonexistent/model-weights.pt*"),
    (["--crbench-model=nosuchthing"], "ERROR: pytest-crbench: unknown detector spec 'nosuchthing'*"),
    (["--crbench-k="], "ERROR: pytest-crbench: --crbench-k: empty value; expected K,K,... "
                       "(leave the option out for the default: 3,5,10,20,40,80,160)"),
])
def test_unknown_names_are_one_usage_error_at_startup(project, args, message):
    result = project.runpytest("--crbench", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "crbench::" not in result.stdout.str()


# ------------------------------------------------------------------ case 7: output paths


@pytest.mark.parametrize("option, make, message", [
    ("report", "file", "--crbench-report: {p} is a file; expected a folder"),
    ("json", "dir", "--crbench-json: {p} is a folder; expected a file path"),
    ("save-masks", "file", "--crbench-save-masks: {p} is a file; expected a folder"),
    ("generate-floors", "under-file", "--crbench-generate-floors: cannot write {p}: "
                                      "{parent} is a file, not a folder"),
])
def test_bad_output_paths_are_usage_errors_before_running(project, option, make, message):
    path = project.path / "out"
    if make == "file":
        path.write_text("precious")
    elif make == "dir":
        path.mkdir()
    else:
        path.write_text("precious")
        path = path / "floors.toml"
    result = project.runpytest("--crbench", f"--crbench-{option}={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = "ERROR: pytest-crbench: " + message.format(p=path, parent=project.path / "out")
    assert expected in result.stderr.str()
    assert "crbench::" not in result.stdout.str()


# ------------------------------------------------------------------ case 4: floors


def test_floors_that_match_nothing_are_a_usage_error(project):
    (project.path / "floors.toml").write_text(textwrap.dedent('''
        schema = "crbench-floors/1"
        [floors."mydet:make".simm.full]
        recall = 0.5
        [floors."deepcr:ACS-WCF".sim-tiny.full]
        recall = 0.5
        [floors."mydet:make".sim-tiny.k7]
        recall = 0.5
        [floors."mydet:make".sim-tiny.k20]
        recall = 0.1
    '''))
    result = project.runpytest("--crbench", "--crbench-floors=floors.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: pytest-crbench: floors file */floors.toml: 3 table(s) match nothing this run "
        "checks, so their floors would never be asserted:",
        "  [[]floors.\"mydet:make\".simm[]]: unknown dataset 'simm'; did you mean 'sim'?",
        "  [[]floors.\"mydet:make\".sim-tiny.k7[]]: region 'k7' is not in this run "
        "(full, k3, k20; --crbench-k)",
        "  [[]floors.\"deepcr:ACS-WCF\".sim-tiny[]]: detector 'deepcr:ACS-WCF' is not "
        "configured (--crbench-model: mydet:make) and is no detector spec",
    ])


def test_floors_of_a_valid_detector_this_run_does_not_configure_are_allowed(project):
    """One floors file may gate several jobs (the shipped file has ten detectors): a
    valid spec that is not configured is not a typo, and its floors are not asserted."""
    (project.path / "floors.toml").write_text(textwrap.dedent('''
        schema = "crbench-floors/1"
        [floors.astroscrappy.sim-tiny.full]
        recall = 0.99
        [floors."mydet:make".sim-tiny.k20]
        recall = 0.1
    '''))
    result = project.runpytest("--crbench", "--crbench-floors=floors.toml")
    assert result.ret == pytest.ExitCode.OK


# ------------------------------------------------------------------ cases 5 and 6


@pytest.mark.parametrize("spec, message", [
    ("mydet:nan", "CRBenchDetectorError: detector 'mydet:nan' returned a probability with "
                  "16384 of 16384 value(s) not finite numbers in [[]0, 1[]] (first at y,x=(0, 0): "
                  "nan; no finite value) (on *sim-tiny*)"),
    ("mydet:above_one", "CRBenchDetectorError: detector 'mydet:above_one' returned a "
                        "probability with 16384 of 16384 value(s) not finite numbers in [[]0, 1[]] "
                        "(first at y,x=(0, 0): 1.5; finite values from 1.5 to 1.5) "
                        "(on *sim-tiny*)"),
    ("mydet:boom", "CRBenchDetectorError: detector 'mydet:boom' raised RuntimeError on "
                   "*sim-tiny*: boom"),
])
def test_bad_detector_output_fails_each_item_once_naming_the_detector(project, tmp_path,
                                                                      monkeypatch, spec,
                                                                      message):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("CRBENCH_TEST_CALLS", str(calls))
    result = project.runpytest("--crbench", f"--crbench-model={spec}")
    result.assert_outcomes(failed=N_ITEMS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message])
    # the detector ran once (first exposure), and each item shows one line, no traceback
    assert len(calls.read_text().split()) == 1
    out = result.stdout.str()
    assert len(lines_with(out, "CRBenchDetectorError: detector")) == N_ITEMS
    assert "Traceback" not in out and "site-packages" not in out


def test_data_dir_under_a_file_is_a_usage_error(project):
    (project.path / "afile").write_text("x")
    result = project.runpytest("--crbench", f"--crbench-data-dir={project.path / 'afile' / 'c'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-crbench: --crbench-data-dir: cannot use "
                                 "*/afile/c: */afile is a file, not a folder"])


# ------------------------------------------------------------------ case 9: hung lock


def test_hung_lock_holder_is_waited_for_then_named(project, tmp_path, monkeypatch, hold_lock):
    data = tmp_path / "private-data"
    lock = data / ".sim-tiny.lock"
    holder = hold_lock(lock)
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    t0 = time.monotonic()
    result = project.runpytest("--crbench", "--crbench-lock-timeout=1")
    assert time.monotonic() - t0 < 120
    result.assert_outcomes(failed=N_ITEMS)
    result.stdout.fnmatch_lines([
        f"crbench: waiting for the lock {lock}, held by pid {holder.pid} on testhost "
        "(giving up after 1 s; --crbench-lock-timeout)",
        f"CRBenchDataError: lock file {lock} is still held by pid {holder.pid} on testhost "
        "after 1 s; if that process is hung, stop it and run again*",
    ])
    assert len(lines_with(result.stdout.str(), "crbench: waiting for the lock")) == 1


# ------------------------------------------------------------------ case 8: read-only cache


def test_read_only_cache_runs_the_benchmark(project, tmp_path):
    from pytest_crbench.cli import main

    data = tmp_path / "shared-cache"
    assert main(["data", "add", *map(str, write_group(tmp_path / "frames")), "--group", "g1",
                 "--dataset", "team", "--data-dir", str(data)]) == 0
    import shutil

    shutil.rmtree(data / ".locks", ignore_errors=True)
    (data / ".crbench-hashes.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", "--crbench", "--crbench-dataset=team",
            f"--crbench-data-dir={data}", "--crbench-offline", "-p", "no:cacheprovider", "-q"]
    cmd = read_only_command(data, argv)
    if cmd is None:
        pytest.skip("cannot make a read-only folder here (root without unshare)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project.path), *sys.path]))
    try:
        proc = subprocess.run(cmd, cwd=project.path, env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        writable_again(data)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{N_ITEMS - 3} passed, 3 skipped" in proc.stdout
    assert not (data / ".locks").exists()


# ------------------------------------------------------------------ case 2: interruption


def _outputs(path: Path) -> list[str]:
    return [f"--crbench-json={path / 'out.json'}", f"--crbench-report={path / 'rep'}",
            f"--crbench-generate-floors={path / 'floors.toml'}"]


def _snapshot(path: Path) -> dict[str, bytes]:
    files = [path / "out.json", path / "floors.toml", *sorted((path / "rep").rglob("*"))]
    return {str(p): p.read_bytes() for p in files if p.is_file()}


def test_ctrl_c_keeps_the_previous_outputs_and_says_so(project, tmp_path):
    models = ["--crbench-model=mydet:make", "--crbench-model=mydet:hang"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project.path), *sys.path]))
    argv = [sys.executable, "-m", "pytest", "--crbench", *models, *_outputs(project.path),
            "-p", "no:cacheprovider", "-q"]
    first = subprocess.run(argv, cwd=project.path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stdout[-3000:]
    before = _snapshot(project.path)
    assert len(before) >= 4 and json.loads(before[str(project.path / "out.json")])["scores"]

    marker = tmp_path / "hanging"
    env["CRBENCH_TEST_HANG"] = str(marker)
    proc = subprocess.Popen(argv, cwd=project.path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert _snapshot(project.path) == before
    assert ("crbench: the run was interrupted (KeyboardInterrupt): no output written; kept "
            "the previous " in out)
    assert str(project.path / "out.json") in out
    assert not list(project.path.rglob("*.part")) and not list(project.path.glob(".rep*"))


def test_stopping_after_a_failure_keeps_the_previous_outputs(project):
    project.runpytest("--crbench", *_outputs(project.path)).assert_outcomes(
        passed=N_ITEMS - 3, skipped=3)
    before = _snapshot(project.path)
    (project.path / "high.toml").write_text(
        'schema = "crbench-floors/1"\n[floors."mydet:make".sim-tiny.full]\nrecall = 1.0\n')
    result = project.runpytest("--crbench", "--crbench-floors=high.toml", "-x",
                               *_outputs(project.path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _snapshot(project.path) == before
    result.stdout.fnmatch_lines([
        "crbench: the run was interrupted (stopping after 1 failures): no output written; "
        "kept the previous *out.json*"])


# ------------------------------------------------------------------ case 10: xdist crash


def test_crashed_worker_keeps_the_completed_results(project):
    out = project.path / "res.json"
    floors = project.path / "floors.toml"
    result = project.runpytest_subprocess(
        "--crbench", "--crbench-model=mydet:make", "--crbench-model=mydet:crash",
        f"--crbench-json={out}", f"--crbench-generate-floors={floors}", "-n", "2",
        "--max-worker-restart=1", timeout=300)
    text = result.stdout.str()
    assert "INTERNALERROR" not in text
    assert result.ret != pytest.ExitCode.OK
    doc = json.loads(out.read_text())
    assert {r["detector"] for r in doc["scores"]} == {"mydet:make"}
    assert doc["complete"] is False
    assert doc["incomplete"][0].startswith("worker 'gw")
    assert "crashed while running 'crbench::mydet:crash::sim-tiny::" in doc["incomplete"][0]
    assert len(doc["incomplete"]) == len({c.split("'")[1] for c in doc["incomplete"]})
    assert not floors.exists()
    result.stdout.fnmatch_lines([
        "crbench: a pytest-xdist worker crashed (worker 'gw*' crashed while running "
        "'crbench::mydet:crash::sim-tiny::*'*): wrote the completed results only (1 "
        "detector/dataset pair(s)); floors not generated"])
