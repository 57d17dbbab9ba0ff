"""Option resolution (flag > [tool.crbench] > ini > default) and the floors file."""

from pathlib import Path

import pytest

from pytest_crbench.bench.settings import OPTIONS, read_tool_table, resolve
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.bench.checks import PixelFloorCheck
from pytest_crbench.bench.floors import floor_from_observed, load_floors, render_floors, write_floors
from pytest_crbench.science.metrics import METRICS


def test_defaults():
    s = resolve({}, {}, {})
    assert s.model == ["deepcr:ACS-WFC", "astroscrappy"]
    assert s.dataset == ["sim"] and s.k == [3, 5, 10, 20, 40, 80, 160]
    assert s.device == "cpu" and s.threshold is None and s.floors is None
    assert all(v == "default" for v in s.origin.values())


def test_precedence_and_paths(tmp_path):
    tool_file = tmp_path / "proj" / "pyproject.toml"
    tool_file.parent.mkdir()
    s = resolve({"k": "20,5", "model": None}, {"k": [3], "model": ["astroscrappy"],
                                                 "floors": "f.toml"},
                {"k": "7", "device": "auto", "json": "out.json"},
                tool_file=tool_file, ini_file=tmp_path / "tox.ini", cwd=tmp_path)
    assert s.k == [5, 20] and s.origin["k"] == "--crbench-k"
    assert s.model == ["astroscrappy"] and "[tool.crbench]" in s.origin["model"]
    assert s.device == "auto" and "crbench_device" in s.origin["device"]
    assert s.floors == tool_file.parent / "f.toml"
    assert s.json == tmp_path / "out.json"


def test_every_option_is_a_flag_a_tool_key_and_an_ini_key(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    help_text = pytester.runpytest("--help").stdout.str()
    for opt in OPTIONS:
        assert opt.flag == "--crbench-" + opt.name.replace("_", "-")
        assert opt.flag in help_text and f"crbench_{opt.name}" in help_text


@pytest.mark.parametrize("flags, message", [
    ({"k": "3,abc"}, "--crbench-k: 'abc' is not a number"),
    ({"k": "0"}, "integers from 1"),
    ({"threshold": "1.5"}, "--crbench-threshold: expected a number from 0 to 1"),
    ({"device": "tpu"}, "--crbench-device: expected one of cpu, cuda, auto"),
    ({"floors_margin": "x"}, "--crbench-floors-margin: expected a number"),
])
def test_bad_options_name_the_option(flags, message):
    with pytest.raises(CRBenchConfigError, match=message.replace("(", r"\(")):
        resolve(flags, {}, {})


def test_tool_table_unknown_key_and_bad_toml(tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text("[tool.crbench]\nmodels = ['x']\n")
    with pytest.raises(CRBenchConfigError, match=r"unknown key\(s\) in \[tool.crbench\]: models"):
        read_tool_table(p)
    p.write_text("[tool.crbench\n")
    with pytest.raises(CRBenchConfigError, match="not valid TOML"):
        read_tool_table(p)
    assert read_tool_table(tmp_path / "missing.toml") == {}


def test_floors_round_trip(tmp_path):
    floors = {PixelFloorCheck("deepcr:ACS-WFC", "sim", "full", "recall"): 0.861,
              PixelFloorCheck("deepcr:ACS-WFC", "sim", "k160", "precision"): 0.5,
              PixelFloorCheck("my.pkg:factory", "sim", "k10", "f2"): 0.0}
    path = write_floors(tmp_path / "floors.toml", floors, header="test")
    assert load_floors(path, metrics=METRICS) == floors
    assert render_floors(floors).index("full") < render_floors(floors).index("k160")
    assert not list(tmp_path.glob("*.part"))


def test_floor_from_observed_rounds_down():
    assert floor_from_observed(0.8888, 0.02) == 0.868
    assert floor_from_observed(0.01, 0.02) == 0.0


@pytest.mark.parametrize("text, message", [
    ("schema = 'crbench-floors/1'\n[floors.a.sim.full]\nrecall = 1.5\n", r"floors.'a'.sim.full.recall must be a number from 0 to 1"),
    ("schema = 'crbench-floors/1'\n[floors.a.sim.full]\nrecal = 0.5\n", "unknown metric 'recal'"),
    ("[floors.a.sim.full]\nrecall = 0.5\n", "expected schema"),
    ("schema = 'crbench-floors/1'\nfloors = 3\n", "floors must be a table"),
    ("schema = 'crbench-floors/1'\n[floors.a.sim.full\n", "not valid TOML"),
])
def test_malformed_floors_name_file_and_key(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(CRBenchConfigError, match=f"bad.toml.*{message}"):
        load_floors(p, metrics=METRICS)
    with pytest.raises(CRBenchConfigError, match="does not exist"):
        load_floors(tmp_path / "nope.toml", metrics=METRICS)
