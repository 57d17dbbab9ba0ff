"""Statistical floors (bench/floor_bounds.py): bounds, minimum counts, and no false alarms
on independent simulated draws while a worse model version fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_crbench.bench.floor_bounds import bootstrap_floors
from pytest_crbench.bench.checks import PhotometryCheck, PixelFloorCheck
from pytest_crbench.bench.intervals import Sample
from pytest_crbench.science.bootstrap import BootstrapConfig

ROOT = Path(__file__).resolve().parents[1]


def sample(tp_scale=1.0) -> Sample:
    rng = np.random.default_rng(0)
    keys = [(f"g{g}", f"g{g}_e{e}") for g in range(6) for e in range(4)]
    full = np.column_stack([(rng.integers(800, 1200, 24) * tp_scale).astype(int),
                            rng.integers(50, 90, 24), rng.integers(50, 90, 24)])
    sparse = np.zeros((24, 3), int)
    sparse[:2] = [[3, 1, 2], [2, 0, 1]]  # k80: a handful of pixels
    zero_tp = np.column_stack([np.zeros(24, int), rng.integers(0, 3, 24),
                               rng.integers(10, 20, 24)])  # no true positive at all
    n_anom = rng.integers(0, 4, len(keys))  # anomalous stars per exposure: 0-3 of 8
    stars = [{"group": g, "exposure": e, "star_id": i,
              "size_bin": "16-50" if i < 8 else "200-400",
              "contaminated": i < 8 or (i == 9 and j < 5), "anomalous": i < n_anom[j],
              "ratio_cleaned": 1.2 if i < n_anom[j] else 1.0}
             for j, (g, e) in enumerate(keys) for i in range(10)]
    return Sample("det", "sim", "1", keys, ["full", "k80", "k160"],
                  {"full": full, "k80": sparse, "k160": zero_tp}, stars)


def test_floors_are_lower_bounds_and_small_counts_get_none():
    gen = bootstrap_floors(sample(), BootstrapConfig(replicates=500), confidence=0.99,
                           min_positives=100, min_stars=20)
    full = PixelFloorCheck("det", "sim", "full", "recall")
    tp, _, fn = sample().counts["full"].sum(axis=0)
    assert 0.8 < gen.limits[full] < tp / (tp + fn)
    # k80 precision from 6 flagged pixels: no floor, and why
    assert "only 6 flagged pixels (fewer than 100)" in gen.skipped[
        PixelFloorCheck("det", "sim", "k80", "precision")]
    # k160 with 0 true positives: a floor of 0 could never fail, so none is written
    assert "could never fail" in gen.skipped[PixelFloorCheck("det", "sim", "k160", "recall")]
    # photometric ceilings are upper bounds above the observed fraction
    s = sample()
    observed = sum(st["anomalous"] for st in s.stars) / (8 * len(s.keys))
    assert observed < gen.limits[PhotometryCheck("det", "sim", "16-50", "max_anomalous")] < 1
    assert gen.skipped[PhotometryCheck("det", "sim", "200-400", "max_anomalous")] == \
        "only 5 contaminated stars (fewer than 20)"


def test_higher_confidence_gives_lower_floors():
    lo = bootstrap_floors(sample(), BootstrapConfig(replicates=500), confidence=0.999,
                          min_positives=100, min_stars=20).limits
    hi = bootstrap_floors(sample(), BootstrapConfig(replicates=500), confidence=0.9,
                          min_positives=100, min_stars=20).limits
    key = PixelFloorCheck("det", "sim", "full", "recall")
    assert lo[key] < hi[key]


@pytest.mark.slow
def test_floors_from_one_draw_pass_other_draws_and_fail_a_worse_model(pytester, monkeypatch,
                                                                    crbench_data_dir):
    """Floors made for deepCR ACS-WFC on sim-tiny: the same model passes them on five
    independent draws (sim-tiny@seed=1..5); the older ACS-WFC-F606W-2-4, held to them as
    a candidate against the baseline, fails (the same check on sim: see the README)."""
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(crbench_data_dir))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyprojecttoml('[tool.crbench]\nk = [3, 10]\n')
    floors = pytester.path / "floors.toml"
    # the noise reference keeps the significant hits on stars, where the two models differ
    # most; under the astrodrizzle rule sim-tiny's star regions hold too few reference
    # cosmic rays for a floor there (see the README: What the reference does)
    common = ["--crbench", "-p", "no:cacheprovider", "--crbench-bootstrap-replicates=500",
              "--crbench-reference=noise"]
    made = pytester.runpytest_subprocess(*common, "--crbench-model=deepcr:ACS-WFC",
                                         "--crbench-dataset=sim-tiny",
                                         f"--crbench-generate-floors={floors}")
    assert made.ret == 0, made.stdout.str()[-3000:]
    text = floors.read_text()
    assert '[floors."deepcr:ACS-WFC".sim-tiny.full]' in text and "recall = " in text
    seeds = [f"--crbench-dataset=sim-tiny@seed={i}" for i in range(1, 6)]
    same = pytester.runpytest_subprocess(*common, "--crbench-model=deepcr:ACS-WFC", *seeds,
                                         f"--crbench-floors={floors}")
    assert same.ret == 0, same.stdout.str()[-3000:]
    worse = pytester.runpytest_subprocess(
        *common, "--crbench-model=deepcr:ACS-WFC-F606W-2-4", "--crbench-baseline=deepcr:ACS-WFC",
        *seeds, f"--crbench-floors={floors}", "-k", "not ::vs::")
    failed = [line for line in worse.stdout.lines if line.startswith("FAILED")]
    assert failed, worse.stdout.str()[-3000:]
    assert all("deepcr:ACS-WFC-F606W-2-4::sim-tiny@seed=" in line for line in failed)
    worse.stdout.fnmatch_lines(["WARNING: floors in *floors.toml for deepcr:ACS-WFC (applied "
                                "to deepcr:ACS-WFC-F606W-2-4, which has none of its own) were "
                                "generated with version 'ACS-WFC *(this run: "
                                "'ACS-WFC-F606W-2-4 *"])
