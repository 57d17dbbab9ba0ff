"""The reference's inner steps equal, bit for bit, the direct numpy versions they replace
(kept here as private copies): the median of a short stack, the median's variance, the
rates of a stack, the saturation box and driz_cr's derivative."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pytest_crbench.science.drizcr import derivative
from pytest_crbench.science.reference import (
    ReferenceConfig, _box_dilation, _median_model, _rates, blotted_model, build_reference,
    nanmedian0, reference_for)


def _nanmedian_by_sort(stack):
    """The sort-based median the network replaces."""
    s = np.sort(stack, axis=0)  # NaN sorts last
    n = np.count_nonzero(np.isfinite(stack), axis=0)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(s, (n // 2).clip(max=stack.shape[0] - 1)[None], 0)[0]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(n > 0, (lo + hi) / stack.dtype.type(2), np.nan).astype(stack.dtype)


def _variance_by_mean(rates, times, rn):
    """The median's variance written with np.mean and np.nan_to_num."""
    n_good = np.sum(np.isfinite(rates), axis=0)
    mean_var = np.mean((rn[:, None, None] ** 2 + np.maximum(
        np.nan_to_num(rates) * times[:, None, None], 0)) / times[:, None, None] ** 2, axis=0)
    return (np.pi / 2) * mean_var / np.maximum(n_good, 1)


def _derivative_float64(image):
    """drizzlepac's qderiv as the package wrote it before: float64, masks per window."""
    a = np.asarray(image, np.float64)
    ny, nx = a.shape
    out = np.zeros(a.shape, np.float64)
    for dst, src in [
            ((slice(0, ny - 1), slice(1, nx - 1)), (slice(0, ny - 1), slice(0, nx - 2))),
            ((slice(0, ny - 1), slice(0, nx - 2)), (slice(0, ny - 1), slice(1, nx - 1))),
            ((slice(1, ny - 1), slice(0, nx - 1)), (slice(0, ny - 2), slice(0, nx - 1))),
            ((slice(0, ny - 2), slice(0, nx - 1)), (slice(1, ny - 1), slice(0, nx - 1)))]:
        neighbour = np.zeros(a.shape, np.float64)
        neighbour[dst] = a[src]
        np.maximum(out, np.fabs(a - neighbour), out=out)
    return out.astype(np.float32)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _awkward(rng, shape, dtype):
    """Values a stack of rates can hold: ordinary, repeated, zero of either sign, tiny,
    huge, infinite and NaN."""
    x = rng.normal(0, 50, shape).astype(dtype)
    specials = np.array([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, 1e-40,
                         np.finfo(dtype).max / 3, -np.finfo(dtype).max / 2], dtype)
    pick = rng.random(shape) < 0.25
    x[pick] = rng.choice(specials, int(pick.sum()))
    return x


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.integers(0, 2**32 - 1),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([0.0, 0.01, 0.3]),
       st.booleans())
def test_median_equals_the_sorted_median(n, seed, dtype, special, zeros):
    rng = np.random.default_rng(seed)
    stack = rng.normal(0, 50, (n, 7, 9)).astype(dtype)
    if special:
        weird = _awkward(rng, stack.shape, dtype)
        pick = rng.random(stack.shape) < special
        stack[pick] = weird[pick]
    if zeros:  # many lanes whose middle values are zeros of either sign
        stack[rng.random(stack.shape) < 0.4] = 0.0
        stack[rng.random(stack.shape) < 0.3] = -0.0
    assert _same_bits(nanmedian0(stack), _nanmedian_by_sort(stack))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_median_variance_equals_the_mean_of_the_stack(n, seed):
    rng = np.random.default_rng(seed)
    rates = _awkward(rng, (n, 11, 6), np.float32)
    times = rng.uniform(0.1, 3000, n)
    rn = rng.uniform(0, 10, n)
    model, var, n_good = _median_model(rates, times, rn)
    assert _same_bits(var, _variance_by_mean(rates, times, rn))
    assert _same_bits(model, _nanmedian_by_sort(rates))
    assert np.array_equal(n_good, np.sum(np.isfinite(rates), axis=0))
    assert _median_model(rates, times, rn, variance=False)[1] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_rates_round_the_float64_quotient_once(dtype):
    rng = np.random.default_rng(1)
    images = [rng.normal(300, 200, (5, 8)).astype(dtype) for _ in range(3)]
    bad = [rng.random((5, 8)) < 0.2 for _ in range(3)]
    times = np.array([1.0 / 3, 507.0, 1e-3])
    expected = np.stack([np.where(b, np.nan, img / t)
                         for img, b, t in zip(images, bad, times)]).astype(np.float32)
    assert _same_bits(_rates(images, bad, times), expected)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3, 5, 7, 9]),
       st.integers(0, 2**32 - 1))
def test_saturation_box_equals_binary_dilation(ny, nx, size, seed):
    from scipy import ndimage

    mask = np.random.default_rng(seed).random((ny, nx)) < 0.1
    expected = ndimage.binary_dilation(mask, structure=np.ones((size, size), bool))
    assert np.array_equal(_box_dilation(mask, size), expected)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1),
       st.sampled_from([np.float32, np.float64]))
def test_derivative_equals_the_float64_windows(ny, nx, seed, dtype):
    rng = np.random.default_rng(seed)
    with np.errstate(invalid="ignore", over="ignore"):  # exponents over the whole range
        image = _awkward(rng, (ny, nx), dtype) * np.exp(rng.normal(0, 20, (ny, nx))).astype(dtype)
        got, expected = derivative(image), _derivative_float64(image)
    assert _same_bits(got, expected)


def test_the_model_variance_is_made_only_for_the_noise_rule():
    from conftest import make_group

    group = make_group(4, seed=5)
    assert blotted_model(group, 1, variance=False)[1] is None
    model, var, covered = blotted_model(group, 1)
    assert var.shape == model.shape and np.isfinite(var).all()
    # either rule gives the same reference whole and strip by strip
    for rule in ("noise", "astrodrizzle"):
        config = ReferenceConfig(rule=rule)
        whole = build_reference(group, config)
        for i in range(4):
            strips = reference_for(group, i, config, strip_rows=37)
            for x, y in zip(strips, (whole.clean[i], whole.crmask[i], whole.ignore[i])):
                assert _same_bits(x, y)
