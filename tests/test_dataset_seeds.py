"""Independent draws of a simulated preset: ``<preset>@seed=N``."""

import numpy as np
import pytest

from pytest_crbench.datasets import simulate as sim
from pytest_crbench.datasets.loading import is_scored, load_dataset
from pytest_crbench.errors import CRBenchConfigError


def test_seeded_spec_is_the_preset_with_another_seed():
    spec = sim.preset_spec("sim@seed=7")
    base = sim.PRESETS["sim"]
    assert (spec.name, spec.seed) == ("sim@seed=7", 7)
    assert (spec.shape, spec.groups) == (base.shape, base.groups)
    assert sim.folder_name(spec) == "sim-seed7" and sim.folder_name(base) == "sim"
    # the plain name keeps the preset's own seed and data
    assert sim.preset_spec("sim") is base
    assert sim.is_simulated("sim-tiny@seed=3") and is_scored("sim-tiny@seed=3")
    assert not sim.is_simulated("stis-crsplit@seed=3")


@pytest.mark.parametrize("name, message", [
    ("sim@seed=x", "seed must be an integer, got 'x'"),
    ("sim@seed=-1", "seed must be >= 0"),
    ("sim@seeds=1", "unknown option\\(s\\) seeds"),
    ("sim@seed", "expected options as NAME@key=value"),
    ("nosuch@seed=1", "unknown simulated dataset 'nosuch'"),
])
def test_bad_seeded_names_say_what_is_wrong(name, message):
    with pytest.raises(CRBenchConfigError, match=message):
        sim.preset_spec(name)


def test_seeded_draws_are_independent_cached_apart_and_reproducible(tmp_path):
    plain = load_dataset("sim-tiny", data_dir=tmp_path)
    one = load_dataset("sim-tiny@seed=1", data_dir=tmp_path)
    again = load_dataset("sim-tiny@seed=1", data_dir=tmp_path)
    two = sim.simulate_dataset("sim-tiny@seed=2")
    assert plain.provenance["seed"] == sim.PRESETS["sim-tiny"].seed
    assert one.provenance["seed"] == 1 and one.provenance["preset"] == "sim-tiny"
    assert one.name == "sim-tiny@seed=1"
    assert [g.name for g in one.groups] == ["sim-tiny-seed1_g00", "sim-tiny-seed1_g01"]
    assert (tmp_path / "sim-tiny-seed1" / "dataset.json").is_file()
    assert (tmp_path / "sim-tiny" / "dataset.json").is_file()
    a, b = one.groups[0].exposures[0], again.groups[0].exposures[0]
    assert np.array_equal(a.sci, b.sci)  # read back from the cache, identical
    assert not np.array_equal(a.sci, plain.groups[0].exposures[0].sci)
    assert not np.array_equal(a.sci, two.groups[0].exposures[0].sci)
    # the in-memory draw equals the cached one
    mem = sim.simulate_dataset("sim-tiny@seed=1").groups[0].exposures[0]
    assert np.array_equal(mem.sci, a.sci) and mem.name == a.name
