"""Option resolution (flag > [tool.crbench] > ini > default) and the floors file."""

from pathlib import Path

import pytest

from pytest_crbench.bench.settings import OPTIONS, read_tool_table, resolve
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.bench.floor_bounds import round_down, round_up
from pytest_crbench.bench.checks import PhotometryCheck, PixelFloorCheck
from pytest_crbench.bench.floors import (load_floors, lookup, made_with_mismatch, read_made_with,
                                         render_floors, write_floors)
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
    ({"floors_confidence": "1"}, "--crbench-floors-confidence: expected a number between 0 "
                                 "and 1"),
    ({"bootstrap_replicates": "50"}, "--crbench-bootstrap-replicates: expected at least 100"),
    ({"floors_min_stars": "-1"}, "--crbench-floors-min-stars: expected an integer >= 0"),
    ({"max_drop": "2"}, "--crbench-max-drop: expected a number from 0 to 1"),
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


def test_bounds_round_outwards():
    assert round_down(0.8888) == 0.888 and round_down(-0.01) == 0.0
    assert round_up(0.1111) == 0.112 and round_up(1.2) == 1.0


def test_floors_comments_made_with_and_seeded_datasets(tmp_path):
    key = PixelFloorCheck("deepcr:ACS-WFC", "sim", "full", "recall")
    skipped = {PixelFloorCheck("deepcr:ACS-WFC", "sim", "k160", "precision"):
               "only 2 flagged pixels (fewer than 100)",
               PhotometryCheck("deepcr:ACS-WFC", "sim", "200-400", "max_anomalous"):
               "only 2 contaminated stars (fewer than 20)"}
    made = {"deepcr:ACS-WFC": {"version": "v1 sha256:abc", "threshold": 0.5}}
    path = write_floors(tmp_path / "f.toml", {key: 0.86}, skipped=skipped, made_with=made)
    text = path.read_text()
    assert "# no precision: only 2 flagged pixels (fewer than 100)" in text
    assert "[floors.\"deepcr:ACS-WFC\".sim.photometry.\"200-400\"]" in text
    assert load_floors(path, metrics=METRICS) == {key: 0.86}
    assert read_made_with(path) == made
    assert made_with_mismatch(path, made, "deepcr:ACS-WFC", "v1 sha256:abc", 0.5) is None
    msg = made_with_mismatch(path, made, "deepcr:ACS-WFC", "v2", 0.7)
    assert "version 'v1 sha256:abc' (this run: 'v2')" in msg and "threshold 0.5" in msg
    assert "applied to cand" in made_with_mismatch(path, made, "deepcr:ACS-WFC", "v2", 0.5,
                                                   applied_to="cand")
    floors = load_floors(path, metrics=METRICS)
    # floors made on sim gate its independent draws; their own floors win
    assert lookup(floors, PixelFloorCheck("deepcr:ACS-WFC", "sim@seed=3", "full", "recall")) == 0.86
    assert lookup(floors, PixelFloorCheck("deepcr:ACS-WFC", "sim-tiny", "full", "recall")) is None
    own = {**floors, PixelFloorCheck("deepcr:ACS-WFC", "sim@seed=3", "full", "recall"): 0.5}
    assert lookup(own, PixelFloorCheck("deepcr:ACS-WFC", "sim@seed=3", "full", "recall")) == 0.5


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


def test_reference_options_resolve_to_a_reference_config():
    from pytest_crbench.bench.settings import REFERENCE_RULES
    from pytest_crbench.science.reference import REFERENCE_RULES as SCIENCE_RULES

    assert REFERENCE_RULES == SCIENCE_RULES
    default = resolve({}, {}, {}).reference_config()
    assert (default.rule, default.snr, default.scale, default.grow, default.ctegrow) == (
        "astrodrizzle", (5.0, 1.5), (1.2, 0.7), 1, 0)
    s = resolve({"reference_scale": "0.5,0.4"},
                {"reference": "noise", "reference_snr": [4, 2], "reference_grow": 3,
                 "truth_snr": 3}, {"reference_ctegrow": "2"})
    cfg = s.reference_config()
    assert (cfg.rule, cfg.snr, cfg.scale, cfg.grow, cfg.ctegrow) == (
        "noise", (4.0, 2.0), (0.5, 0.4), 3, 2)
    assert s.truth_snr == 3.0


@pytest.mark.parametrize("flags, message", [
    ({"reference": "median"}, "--crbench-reference: expected one of astrodrizzle, noise"),
    ({"reference_snr": "5"}, "--crbench-reference-snr: expected two"),
    ({"reference_scale": "a b"}, "--crbench-reference-scale: expected two"),
    ({"reference_grow": "0"}, "--crbench-reference-grow: expected an integer >= 1"),
    ({"reference_ctegrow": "1.5"}, "--crbench-reference-ctegrow: expected an integer >= 0"),
    ({"truth_snr": "-1"}, "--crbench-truth-snr: expected a number > 0"),
])
def test_bad_reference_options_name_the_option(flags, message):
    with pytest.raises(CRBenchConfigError, match=message):
        resolve(flags, {}, {})


def test_truth_floors_round_trip_and_order(tmp_path):
    floors = {PixelFloorCheck("d", "sim", "full", "recall"): 0.9,
              PixelFloorCheck("d", "sim", "k3", "recall"): 0.8,
              PixelFloorCheck("d", "sim", "full", "recall", "truth"): 0.95,
              PixelFloorCheck("d", "sim", "k160", "precision", "truth"): 0.5,
              PixelFloorCheck("d", "sim", "k3", "precision", "truth"): 0.7}
    path = write_floors(tmp_path / "floors.toml", floors)
    assert load_floors(path, metrics=METRICS) == floors
    text = path.read_text()
    order = [text.index(t) for t in ("sim.full]", "sim.k3]", "sim.truth.full]", "sim.truth.k3]",
                                     "sim.truth.k160]")]
    assert order == sorted(order)
    assert str(PixelFloorCheck("d", "sim", "k3", "recall", "truth")) == "d / sim / truth / k3 / recall"
    path.write_text('schema = "crbench-floors/1"\n[floors.d.sim.truth.full]\nrecal = 0.5\n')
    with pytest.raises(CRBenchConfigError, match=r"floors.'d'.sim.truth.full.recal: unknown metric"):
        load_floors(path, metrics=METRICS)


def test_precision_choices_are_the_detectors():
    """The option's list (kept free of heavy imports) is deepCR's own list."""
    from pytest_crbench.bench.settings import PRECISIONS
    from pytest_crbench.detectors.deepcr import PRECISIONS as DETECTOR_PRECISIONS

    assert PRECISIONS == DETECTOR_PRECISIONS
