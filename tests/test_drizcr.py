"""Properties of the numpy driz_cr rule (no drizzlepac needed; the equality with
drizzlepac itself is tests/test_drizcr_equivalence.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from conftest import make_group
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.drizcr import DrizCRParams, cte_direction, derivative, driz_cr_mask
from pytest_crbench.science.reference import (
    ReferenceConfig, blotted_model, build_reference, noise_rule_mask)

shapes = st.tuples(st.integers(3, 12), st.integers(3, 12))


@st.composite
def frames(draw):
    """(data, blot): a smooth-ish positive model plus noise and a few spikes."""
    shape = draw(shapes)
    blot = draw(arrays(np.float32, shape, elements=st.floats(0, 5000, width=32)))
    delta = draw(arrays(np.float32, shape, elements=st.floats(-300, 3000, width=32)))
    return blot + delta, blot


snr_pairs = st.tuples(st.floats(0.5, 8), st.floats(0.5, 8))
scale_pairs = st.tuples(st.floats(0, 3), st.floats(0, 3))


@settings(max_examples=150, deadline=None)
@given(frames(), snr_pairs, st.floats(0, 10))
def test_scale_zero_is_the_noise_rule_with_the_same_noise(frame, snr, rn):
    data, blot = frame
    ours = driz_cr_mask(data, blot, gain=1.0, read_noise=rn,
                        params=DrizCRParams(snr=snr, scale=(0, 0)))
    sigma = np.sqrt(np.abs(blot) + np.float32(rn) ** 2)
    np.testing.assert_array_equal(ours, noise_rule_mask(np.abs(data - blot), sigma, snr))


@settings(max_examples=150, deadline=None)
@given(frames(), snr_pairs, scale_pairs, st.floats(1, 3), st.integers(0, 1), st.floats(0, 1))
def test_monotonic_in_snr_and_scale(frame, snr, scale, factor, which, dscale):
    data, blot = frame
    base = driz_cr_mask(data, blot, gain=1.0, read_noise=4.0, params=DrizCRParams(snr, scale))
    higher_snr = list(snr)
    higher_snr[which] *= factor
    higher_scale = list(scale)
    higher_scale[which] += dscale
    for params in (DrizCRParams(higher_snr, scale), DrizCRParams(snr, higher_scale)):
        stricter = driz_cr_mask(data, blot, gain=1.0, read_noise=4.0, params=params)
        assert not (stricter & ~base).any()


@settings(max_examples=100, deadline=None)
@given(frames(), snr_pairs, scale_pairs, st.integers(1, 4), st.integers(0, 4),
       st.sampled_from([1, -1]))
def test_growth_only_adds_pixels_around_flags(frame, snr, scale, grow, ctegrow, cte_dir):
    data, blot = frame
    plain = driz_cr_mask(data, blot, gain=1.0, read_noise=4.0, params=DrizCRParams(snr, scale))
    grown = driz_cr_mask(data, blot, gain=1.0, read_noise=4.0,
                         params=DrizCRParams(snr, scale, grow, ctegrow), cte_dir=cte_dir)
    assert not (plain & ~grown).any()
    if not plain.any():
        assert not grown.any()


@settings(max_examples=100, deadline=None)
@given(frames(), snr_pairs, scale_pairs)
def test_flags_pass_the_second_test_next_to_a_first_pass_pixel(frame, snr, scale):
    data, blot = frame
    mask = driz_cr_mask(data, blot, gain=1.0, read_noise=4.0, params=DrizCRParams(snr, scale))
    excess = np.abs(data - blot)
    sigma = np.sqrt(np.abs(blot) + np.float32(16.0))
    deriv = derivative(blot)
    first = excess > scale[0] * deriv + snr[0] * sigma
    second = excess > scale[1] * deriv + snr[1] * sigma
    assert not (mask & ~second).any()
    for y, x in zip(*np.nonzero(mask)):
        assert first[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].any()


def test_derivative_is_the_largest_neighbour_difference_inside():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (9, 11)).astype(np.float32)
    d = derivative(img)
    for y in range(1, 7):  # drizzlepac's window: interior minus the last two rows/columns
        for x in range(1, 9):
            expect = max(abs(img[y, x] - img[y + dy, x + dx])
                         for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)))
            assert d[y, x] == pytest.approx(expect, rel=1e-6)
    # at the outer rows/columns a missing neighbour counts as 0: |pixel| dominates
    assert d[0, 0] == pytest.approx(abs(img[0, 0]), rel=1e-6)


def test_derivative_term_protects_star_centres():
    """A bright star whose peak differs between exposures by a few sigma (sub-pixel
    jitter, PSF change) is not flagged by driz_cr but is by the noise rule."""
    y, x = np.mgrid[0:21, 0:21]
    star = 20000 * np.exp(-((x - 10) ** 2 + (y - 10) ** 2) / (2 * 1.0 ** 2)) + 100
    blot = star.astype(np.float32)
    data = (star * 1.04).astype(np.float32)  # 4 % brighter: ~5.6 sigma at the peak
    drizzle = driz_cr_mask(data, blot, gain=1.0, read_noise=5.0)
    noise = noise_rule_mask(data - blot, np.sqrt(5.0 ** 2 + blot), (5.0, 1.5))
    assert noise[10, 10] and not drizzle.any()


def test_parameters_parse_like_astrodrizzle():
    assert DrizCRParams(snr="5.0 1.5").snr == (5.0, 1.5)
    assert DrizCRParams(snr="5,1.5", scale="1.2;0.7").scale == (1.2, 0.7)
    assert DrizCRParams(scale=[0, 0]).scale == (0.0, 0.0)
    with pytest.raises(CRBenchConfigError, match="reference_snr.*two"):
        DrizCRParams(snr="5")
    with pytest.raises(CRBenchConfigError, match="reference_scale"):
        DrizCRParams(scale="a b")
    with pytest.raises(CRBenchConfigError, match="reference_ctegrow"):
        DrizCRParams(ctegrow=-1)
    with pytest.raises(CRBenchConfigError, match="readout direction"):
        driz_cr_mask(np.ones((4, 4)), np.ones((4, 4)), gain=1.0, read_noise=1.0,
                     params=DrizCRParams(ctegrow=2), cte_dir=0)


def test_cte_direction_follows_astrodrizzle():
    assert cte_direction("ACS", "WFC", 2) == -1 and cte_direction("ACS", "WFC", 1) == 1
    assert cte_direction("WFC3", "UVIS", 2) == -1 and cte_direction("WFPC2", "WF3", 3) == -1
    assert cte_direction("STIS", "CCD", 1) == 1 and cte_direction("ACS", "HRC", 1) == 0


def test_pair_reference_flags_only_positive_excess():
    """In a pair the model is the other exposure: its cosmic rays are negative excess and
    must not be flagged in this one."""
    group = make_group(2, seed=5)
    ref = build_reference(group, ReferenceConfig(rule="astrodrizzle"))
    for i, (exp, mask) in enumerate(zip(group.exposures, ref.crmask)):
        other = group.exposures[1 - i]
        only_other = (other.crtruth > 500) & (exp.crtruth == 0)
        assert only_other.any() and not mask[only_other].any()


def test_rules_differ_only_where_the_derivative_matters():
    group = make_group(6, seed=2)
    drizzle = build_reference(group, ReferenceConfig(rule="astrodrizzle"))
    noise = build_reference(group, ReferenceConfig(rule="noise"))
    for i, exp in enumerate(group.exposures):
        strong = (exp.crtruth > 1500)
        assert drizzle.crmask[i][strong & ~drizzle.ignore[i]].mean() > 0.95
        assert noise.crmask[i][strong & ~noise.ignore[i]].mean() > 0.95
        model, _, _ = blotted_model(group, i)
        assert model.shape == exp.shape
    cfg = ReferenceConfig(rule="noise", scale=(3, 3))
    assert cfg.provenance() == {"rule": "noise", "snr": [5.0, 1.5], "saturation": None,
                                "sat_box": 7}
    assert ReferenceConfig().describe() == "astrodrizzle (snr 5/1.5, scale 1.2/0.7, grow 1)"
