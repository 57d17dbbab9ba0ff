"""Aperture sums read from windows of rows equal one SEP call on the whole image."""

import numpy as np
import pytest
import sep
from hypothesis import given, settings, strategies as st

from pytest_crbench.science.apertures import sum_circles, touches_ignored
from pytest_crbench.science.photometry import PhotometryConfig, _extract, find_stars


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(20, 300),
       strip=st.integers(1, 160), n=st.integers(0, 40), with_err=st.booleans())
def test_windows_of_rows_give_sep_sums_bit_for_bit(seed, height, strip, n, with_err):
    rng = np.random.default_rng(seed)
    width = 120
    image = rng.normal(100, 30, (height, width)).astype(np.float32)
    err = np.abs(rng.normal(5, 1, image.shape)).astype(np.float32)
    # centres anywhere, also beyond the edges (truncated apertures)
    x = rng.uniform(-5, width + 5, n)
    y = rng.uniform(-5, height + 5, n)
    r = rng.uniform(0.5, 25, n)
    full = sep.sum_circle(image, x, y, r, err=err if with_err else None, subpix=5)
    got = sum_circles(lambda a0, a1: image[a0:a1], height, x, y, r,
                      err_rows=(lambda a0, a1: err[a0:a1]) if with_err else None,
                      subpix=5, strip_rows=strip)
    for want, have in zip(full, got):
        np.testing.assert_array_equal(np.asarray(want), have)


def test_touches_ignored_is_exact_at_the_pixel():
    ignore = np.zeros((200, 90), bool)
    ignore[150, 40] = True
    x = np.array([40.0, 40.0, 40.0])
    y = np.array([146.0, 144.5, 20.0])
    r = np.array([3.9, 3.9, 10.0])
    # 4 px away: inside a 3.9-px aperture? no; 5.5 px: no; far: no; then one that covers it
    assert touches_ignored(ignore, x, y, r, strip_rows=7).tolist() == [False, False, False]
    assert touches_ignored(ignore, [40.0], [148.0], [3.0], strip_rows=7).tolist() == [True]
    assert touches_ignored(np.zeros((5, 5), bool), [1.0], [1.0], [1.0]).tolist() == [False]


def test_a_full_pixel_stack_is_grown_not_fatal(monkeypatch):
    """SEP's pixel stack starts small; a large bright object overflows it and the
    extraction is retried with a larger stack, giving the objects of a large stack."""
    import pytest_crbench.science.photometry as phot

    rng = np.random.default_rng(3)
    img = rng.normal(0, 1, (400, 400)).astype(np.float32)
    yy, xx = np.mgrid[:400, :400]
    img += 400 * np.exp(-((xx - 200) ** 2 + (yy - 200) ** 2) / (2 * 40.0 ** 2))
    rms = np.ones_like(img)
    ign = np.zeros(img.shape, bool)
    config = PhotometryConfig()
    big = _extract(img, rms, ign, config, "big")
    monkeypatch.setattr(phot, "PIXSTACK", 1000)  # forces several doublings
    small = _extract(img, rms, ign, config, "small")
    assert len(small) == len(big) >= 1
    np.testing.assert_array_equal(small["flux"], big["flux"])
    assert find_stars(img + 10, None, config)["star_id"].size >= 1
