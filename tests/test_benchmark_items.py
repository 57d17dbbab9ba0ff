"""The shipped inference benchmark: enabled by an option in a project without any test
file, named the same across runs and model versions, compared by pytest-benchmark."""

from __future__ import annotations

import json
import textwrap

import pytest


def _project(pytester, monkeypatch, data_dir, models):
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data_dir))
    # pytest-benchmark switches itself off on an xdist worker (this suite runs with -n 2)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    listed = ", ".join(json.dumps(m) for m in models)
    pytester.makepyprojecttoml(textwrap.dedent(f'''
        [tool.crbench]
        model = [{listed}]
        dataset = ["sim-tiny"]
        k = [3]
        benchmark = true
        [tool.pytest.ini_options]
        python_files = ["check_*.py"]
        python_functions = ["check_*"]
    '''))
    return pytester


def _saved(pytester):
    files = sorted(pytester.path.joinpath(".benchmarks").rglob("*.json"))
    return [json.loads(f.read_text()) for f in files]


def test_benchmark_items_need_no_test_file_and_keep_their_names(pytester, monkeypatch,
                                                                 crbench_data_dir):
    _project(pytester, monkeypatch, crbench_data_dir, ["rhoads", "pych:box=16,gap=6"])
    first = pytester.runpytest("--crbench", "-p", "no:xdist", "--benchmark-autosave")
    first.assert_outcomes(passed=2 + 2 * (2 * 4 + 12 + 3) - 2 * 3, skipped=2 * 3)
    [run] = _saved(pytester)
    names = sorted(b["fullname"] for b in run["benchmarks"])
    assert names == ["crbench-benchmark::test_inference_time[pych:box=16,gap=6-sim-tiny]",
                     "crbench-benchmark::test_inference_time[rhoads-sim-tiny]"]
    versions = {b["extra_info"]["detector"]: b["extra_info"]["version"] for b in run["benchmarks"]}
    assert versions["rhoads"].startswith("rhoads-2000") and "gap=6.0" in versions["pych:box=16,gap=6"]
    for b in run["benchmarks"]:
        assert b["extra_info"]["mpix_per_s"] > 0 and b["extra_info"]["shape"] == [128, 128]

    # a new model version of the same spec: same name, new version, compared with the last run
    _project(pytester, monkeypatch, crbench_data_dir, ["rhoads:sigma=6", "pych:box=16,gap=6"])
    second = pytester.runpytest("--crbench", "-p", "no:xdist", "--benchmark-autosave",
                                "--benchmark-compare", "-k", "pych")
    second.stderr.fnmatch_lines(["*Comparing against benchmarks from*0001_*"])
    for run_id in ("0001*", "NOW)*"):  # the same benchmark, matched across the two runs
        second.stdout.fnmatch_lines([f"*test_inference_time?pych:box=16,gap=6-sim-tiny? ({run_id}"])
    assert second.ret == 0


def test_compare_fail_fails_the_session_on_a_slower_run(pytester, monkeypatch, crbench_data_dir):
    _project(pytester, monkeypatch, crbench_data_dir, ["rhoads"])
    pytester.runpytest("--crbench", "-p", "no:xdist", "--benchmark-autosave", "-k", "benchmark")
    [run] = _saved(pytester)
    path = next(pytester.path.joinpath(".benchmarks").rglob("*.json"))
    for b in run["benchmarks"]:  # pretend the saved run was 1000 times faster
        for key in ("min", "max", "mean", "median"):
            b["stats"][key] /= 1000.0
    path.write_text(json.dumps(run))
    result = pytester.runpytest("--crbench", "-p", "no:xdist", "-k", "benchmark",
                                "--benchmark-compare", "--benchmark-compare-fail=median:50%")
    assert result.ret != 0
    (result.stdout.str() + result.stderr.str()).index("Performance has regressed")


def test_without_the_option_there_are_no_benchmark_items(pytester, monkeypatch, crbench_data_dir):
    _project(pytester, monkeypatch, crbench_data_dir, ["rhoads"])
    result = pytester.runpytest("--crbench", "-p", "no:xdist", "--crbench-benchmark=false",
                                "--collect-only", "-q")
    assert "crbench-benchmark" not in result.stdout.str()
