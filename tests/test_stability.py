"""Per-group F1/F2 and trimmed flux-ratio RMS, with the mean ± 3σ band."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.stability import group_stability, trimmed_rms


def test_trimmed_rms_drops_five_percent_each_end():
    r = np.concatenate([np.full(18, 1.01), [100.0, -50.0]])  # 20 values: 1 trimmed each end
    assert trimmed_rms(r) == pytest.approx(0.01)
    assert trimmed_rms(r, trim=0.0) > 10
    assert trimmed_rms([1.0, 1.02, np.nan]) == pytest.approx(np.sqrt(0.0002))
    assert trimmed_rms([0.9, 1.1], center=None) == pytest.approx(0.1)
    assert trimmed_rms([]) is None and trimmed_rms([np.nan]) is None
    with pytest.raises(CRBenchDataError, match="trim"):
        trimmed_rms([1.0], trim=0.6)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 3), min_size=1, max_size=60), st.randoms())
def test_trimmed_rms_is_permutation_invariant(values, rnd):
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert trimmed_rms(values) == pytest.approx(trimmed_rms(shuffled), rel=1e-12, abs=1e-15)


def _records(n, outlier=None):
    rng = np.random.default_rng(1)
    recs = []
    for i in range(n):
        tp = 850 + int(rng.integers(-20, 20))
        recs.append({"group": f"g{i:02d}", "date": f"{2010 + i % 10}-0{1 + i % 9}-01",
                     "tp": tp, "fp": 100, "fn": 150,
                     "ratios": 1 + rng.normal(0, 0.02, 50)})
    if outlier is not None:
        recs[outlier]["tp"] = 100
        recs[outlier]["fn"] = 900
    return recs


def test_f1_f2_rms_and_band():
    recs = [{"group": "a", "date": "2012-01-01", "tp": 80, "fp": 20, "fn": 20,
             "ratios": [1.0, 1.1]},
            {"group": "b", "date": "2010-01-01", "tp": 90, "fp": 10, "fn": 0, "ratios": [1.0]}]
    out = group_stability(recs)
    assert [g["group"] for g in out["groups"]] == ["b", "a"]  # sorted by date
    a = out["groups"][1]
    assert a["f1"] == pytest.approx(0.8)
    assert a["f2"] == pytest.approx(5 * 80 / (5 * 80 + 4 * 20 + 20))
    assert a["rms"] == pytest.approx(np.sqrt(0.01 / 2))
    b = out["groups"][0]
    assert b["f1"] == pytest.approx(2 * 90 / (2 * 90 + 10))
    band = out["f1"]
    assert band["mean"] == pytest.approx((0.8 + b["f1"]) / 2)
    assert band["std"] == pytest.approx(np.std([0.8, b["f1"]], ddof=1))
    assert band["upper"] == pytest.approx(band["mean"] + 3 * band["std"])
    assert band["outliers"] == []


def test_outlier_group_is_named():
    out = group_stability(_records(20, outlier=7))
    assert out["f1"]["outliers"] == ["g07"] and out["f2"]["outliers"] == ["g07"]
    assert out["rms"]["outliers"] == []
    # with few groups an outlier can hide in its own sigma; exclude_self finds it
    few = _records(6, outlier=2)
    assert group_stability(few)["f1"]["outliers"] == []
    assert group_stability(few, exclude_self=True)["f1"]["outliers"] == ["g02"]


def test_undefined_values_have_reasons():
    out = group_stability([{"group": "only", "date": "x", "tp": 0, "fp": 0, "fn": 0,
                            "ratios": []}])
    g = out["groups"][0]
    assert g["f1"] is None and "no predicted" in g["reasons"]["f1"]
    assert g["rms"] is None and "no star" in g["reasons"]["rms"]
    assert out["f1"]["mean"] is None and "no group" in out["f1"]["reason"]
    one = group_stability(_records(1))
    assert one["f1"]["std"] is None and "one group only" in one["f1"]["reason"]


def test_bad_records():
    with pytest.raises(CRBenchDataError, match="group 'g'.*fp"):
        group_stability([{"group": "g", "tp": 1, "fn": 1}])
    with pytest.raises(CRBenchDataError, match="'g' appears twice"):
        group_stability([{"group": "g", "tp": 1, "fp": 0, "fn": 0}] * 2)
