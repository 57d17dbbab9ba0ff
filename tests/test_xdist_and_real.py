"""pytest-xdist runs equal serial runs; real HST data through the whole plugin."""

import json
import textwrap

import pytest

from conftest import SHARED_HST
from test_plugin import USER_DETECTOR


@pytest.fixture
def subproject(pytester, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(tmp_path_factory.mktemp("xdist-data")))
    pytester.makepyfile(mydet=USER_DETECTOR)
    pytester.makepyprojecttoml(textwrap.dedent('''
        [tool.pytest.ini_options]
        pythonpath = ["."]

        [tool.crbench]
        model = ["mydet:make", "mydet:make_blind"]
        dataset = ["sim-tiny"]
        k = [3, 20]
    '''))
    return pytester


def _comparable(path):
    doc = json.loads(path.read_text())
    doc.pop("timing")
    doc["provenance"]["settings"].pop("json")
    return doc


def test_two_workers_give_the_serial_results(subproject):
    serial, parallel = subproject.path / "serial.json", subproject.path / "parallel.json"
    r1 = subproject.runpytest_subprocess("--crbench", f"--crbench-json={serial}")
    r2 = subproject.runpytest_subprocess("--crbench", f"--crbench-json={parallel}", "-n", "2")
    assert r1.ret == r2.ret == 0
    n = r1.parseoutcomes()["passed"]
    assert r2.parseoutcomes()["passed"] == n
    assert _comparable(serial) == _comparable(parallel)
    # the controller printed the merged summary, once
    out = r2.stdout.str()
    assert out.count("crbench: cosmic-ray detector scores") == 1
    assert "mydet:make_blind on sim-tiny" in out
    assert not list(subproject.path.glob("*.part"))


needs_shared = pytest.mark.skipif(not SHARED_HST.is_dir(),
                                  reason=f"real HST frames not found at {SHARED_HST}")


@needs_shared
def test_real_stis_pairs_run_end_to_end(pytester, tmp_path, monkeypatch):
    from pytest_crbench.datasets.cache import seed

    data = tmp_path / "data"
    seed(SHARED_HST, data_dir=data)
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data))
    out = tmp_path / "stis.json"
    result = pytester.runpytest("--crbench", "--crbench-offline", "--crbench-model=astroscrappy",
                                "--crbench-dataset=stis-crsplit", "--crbench-dataset=hrc-smoke",
                                "--crbench-k=3,20", f"--crbench-json={out}")
    result.assert_outcomes(passed=3 * 4 + 4 * 3 + 3 + 1)
    doc = json.loads(out.read_text())
    pooled = {r["region"]: r for r in doc["scores"] if r["exposure"] is None}
    assert pooled["full"]["tp"] > 1000 and 0 < pooled["full"]["recall"] < 1
    exposures = {r["exposure"] for r in doc["scores"] if r["exposure"]}
    assert exposures == {f"o565{n}_raw[{i}]" for n in ("02020", "02030", "02040", "02050",
                                                      "03010", "03020") for i in (1, 2)}
    assert doc["provenance"]["datasets"]["stis-crsplit"]["files"]
    smoke = doc["smoke"][0]
    assert smoke["dataset"] == "hrc-smoke" and len(smoke["exposures"]) == 2
    result.stdout.fnmatch_lines(["*astroscrappy on hrc-smoke (smoke only, not scored*"])


def test_missing_real_data_fails_with_the_fetch_command(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(tmp_path / "empty"))
    result = pytester.runpytest("--crbench", "--crbench-offline", "--crbench-model=astroscrappy",
                                "--crbench-dataset=stis-crsplit", "--crbench-k=3",
                                "-k", "full and recall")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*o56502020_raw.fits*", "*crbench data fetch stis-crsplit*"])
