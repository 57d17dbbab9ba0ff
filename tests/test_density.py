"""The CR-density fits against scipy, the exposure-time limit and the per-quantity table."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from pytest_crbench.science.density import (FitResult, cr_fraction_per_second, density_relation,
                                    linear_fit, max_exposure_time)
from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.photometry import PHOT_DTYPE


def test_known_data_matches_scipy():
    x = np.array([0.01, 0.02, 0.035, 0.05, 0.07, 0.09])
    y = np.array([0.12, 0.25, 0.33, 0.55, 0.71, 0.97])
    f = linear_fit(x, y)
    ref = stats.linregress(x, y)
    r, p = stats.pearsonr(x, y)
    assert f.slope == pytest.approx(ref.slope, rel=1e-12)
    assert f.intercept == pytest.approx(ref.intercept, rel=1e-10)
    assert f.r == pytest.approx(r, rel=1e-12)
    assert f.p == pytest.approx(p, rel=1e-9)
    assert f.stderr == pytest.approx(ref.stderr, rel=1e-9)
    assert f.intercept_stderr == pytest.approx(ref.intercept_stderr, rel=1e-9)
    assert f.n == 6 and f.x_max == 0.09


def test_exact_line_and_degenerate_cases():
    f = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert (f.slope, f.intercept, f.r, f.p) == (2.0, 1.0, 1.0, 0.0)
    flat = linear_fit([0, 1, 2], [5, 5, 5])
    assert flat.slope == 0 and flat.r is None and flat.p is None
    two = linear_fit([0, 1], [0, 2])
    assert two.p is None and two.slope == 2
    with pytest.raises(CRBenchDataError, match="all 3 x values are equal"):
        linear_fit([1, 1, 1], [1, 2, 3])
    with pytest.raises(CRBenchDataError, match="at least 2 finite points"):
        linear_fit([1, np.nan], [1, 2])
    with pytest.raises(CRBenchDataError, match="x has 2 values but y has 3"):
        linear_fit([1, 2], [1, 2, 3])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=3,
                max_size=40))
def test_random_data_matches_scipy(points):
    x, y = np.array(points).T
    assume(np.ptp(x) > 1e-3 and np.ptp(y) > 1e-3)
    assume(np.std(x) > 1e-3 * max(1.0, np.abs(x).max()))
    f = linear_fit(x, y)
    ref = stats.linregress(x, y)
    scale = max(1.0, abs(ref.slope))
    assert f.slope == pytest.approx(ref.slope, rel=1e-7, abs=1e-9 * scale)
    assert f.intercept == pytest.approx(ref.intercept, rel=1e-7, abs=1e-6 * scale * 100)
    assert f.r == pytest.approx(ref.rvalue, abs=1e-9)
    if ref.pvalue > 1e-6:
        assert f.p == pytest.approx(ref.pvalue, rel=1e-5)
    else:  # near |r| = 1 the p-value is dominated by the rounding of r
        assert f.p < 1e-5


def _stars(n, n_cont, n_anom_by_bin):
    t = np.zeros(n, dtype=PHOT_DTYPE)
    t["contaminated"][:n_cont] = True
    t["size_bin"] = "16-50"
    i = 0
    for lab, (k, a) in n_anom_by_bin.items():
        t["size_bin"][i:i + k] = lab
        t["anomalous"][i:i + a] = True
        i += k
    return t


def test_density_relation_per_quantity():
    recs = []
    for i, f in enumerate([0.01, 0.02, 0.03, 0.04]):
        n_cont = int(round(20 * f / 0.04))
        recs.append({"group": "g", "exposure": f"e{i}", "exptime": 1000 * f / 0.03,
                     "cr_fraction": f,
                     "stars": _stars(20, n_cont, {"16-50": (10, i), "50-200": (10, 2 * i)})})
    rel = density_relation(recs)
    assert set(rel) == {"contaminated", "anomalous", "anomalous_16-50", "anomalous_50-200",
                        "anomalous_200-400"}
    c = rel["contaminated"]
    assert c["x"] == [0.01, 0.02, 0.03, 0.04] and c["labels"][0] == "g/e0"
    assert c["fit"].slope == pytest.approx(25.0) and c["fit"].r == pytest.approx(1.0)
    assert rel["anomalous_50-200"]["fit"].slope == pytest.approx(20.0)
    empty = rel["anomalous_200-400"]
    assert empty["fit"] is None and "at least 2" in empty["reason"]
    assert empty["n_skipped"] == 4
    assert cr_fraction_per_second(recs) == pytest.approx(0.03 / 1000)


def test_density_record_missing_key():
    with pytest.raises(CRBenchDataError, match="'e9'.*cr_fraction"):
        density_relation([{"exposure": "e9", "stars": []}])


def test_max_exposure_time():
    fit = FitResult(slope=5.0, intercept=0.0, r=0.9, p=1e-5, n=10)
    # level 0.2 -> x = 0.04 -> at 3e-5 per second: 1333 s (the paper's 4 % ~ 1200-1500 s)
    assert max_exposure_time(fit, 3e-5, 0.2) == pytest.approx(0.04 / 3e-5)
    assert max_exposure_time(FitResult(5.0, 0.3, 0.9, 0.1, 5), 3e-5, 0.2) == 0.0
    assert max_exposure_time(FitResult(-1.0, 0.1, -0.5, 0.1, 5), 3e-5, 0.2) is None
    assert max_exposure_time(FitResult(-1.0, 0.3, -0.5, 0.1, 5), 3e-5, 0.2) == 0.0
    assert max_exposure_time(None, 3e-5, 0.2) is None
    assert max_exposure_time(fit, None, 0.2) is None
    assert max_exposure_time(fit, 0.0, 0.2) is None
    with pytest.raises(CRBenchDataError, match="level"):
        max_exposure_time(fit, 1e-5, math.nan)


def test_cr_rate_without_exptime():
    assert cr_fraction_per_second([{"cr_fraction": 0.1}]) is None
