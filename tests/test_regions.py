"""Star regions: thresholds in units of the background RMS, nesting, the REGION map."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import scene
from pytest_crbench.science.background import background
from pytest_crbench.science.regions import (DEFAULT_MIN_AREA, region_levels, region_map,
                                            region_name)


def noisy(seed=0, **kw):
    rng = np.random.default_rng(seed)
    img = scene((96, 96), **kw)
    return (img + rng.normal(0, 10.0, img.shape)).astype(np.float32)


def test_background_rms_matches_noise():
    bkg = background(noisy(sky=100.0, stars=()))
    assert bkg.rms == pytest.approx(10.0, rel=0.1)
    assert np.median(bkg.level) == pytest.approx(100.0, abs=2)


@settings(deadline=None, max_examples=15)
@given(st.integers(0, 1000))
def test_regions_are_nested_and_centred_on_stars(seed):
    img = noisy(seed)
    ks = (3, 5, 10, 20, 40, 80, 160)
    rmap = region_map(img, None, ks)
    regions = {"full": np.ones(rmap.shape, bool), **{region_name(k): rmap >= k for k in ks}}
    names = ["full"] + [region_name(k) for k in ks]
    for outer, inner in zip(names, names[1:]):
        assert not (regions[inner] & ~regions[outer]).any()
    # the brightest star's centre is in the innermost region, the sky corner in none
    assert regions["k160"][61, 70] or regions["k160"][60, 71]
    assert not regions["k3"][:5, :5].any()


def test_region_map_values_are_largest_k_and_ignore_is_excluded():
    img = noisy()
    ignore = np.zeros(img.shape, bool)
    ignore[55:66, 65:76] = True
    rmap = region_map(img, ignore, (3, 10))
    assert rmap.dtype == np.int16
    assert set(np.unique(rmap)) <= {0, 3, 10}
    assert (rmap[ignore] == 0).all()


def test_isolated_noise_pixels_are_not_regions():
    rng = np.random.default_rng(1)
    img = (100 + rng.normal(0, 10, (128, 128))).astype(np.float32)
    rmap = region_map(img, None, (3,))
    assert (rmap > 0).mean() < 0.001


def test_names_and_bad_k():
    assert region_name(None) == "full" and region_name(3) == "k3"
    with pytest.raises(ValueError, match="> 0"):
        region_map(noisy(), None, (0,))


def _region_map_per_k(clean, ignore, ks, bkg, min_area=DEFAULT_MIN_AREA):
    """The region map written the direct way: one threshold image per k."""
    from scipy import ndimage

    out = np.zeros(clean.shape, np.int16)
    for k in sorted(ks):
        above = (np.asarray(clean, np.float64) - bkg.level) > k * bkg.rms
        if ignore is not None:
            above &= ~ignore
        labels, n = ndimage.label(above, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_area
        keep[0] = False
        out[keep[labels]] = k
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), with_ignore=st.booleans(), with_nan=st.booleans(),
       ks=st.lists(st.sampled_from([1, 2, 3, 5, 10, 20, 40, 80, 160]), min_size=1,
                   max_size=7, unique=True))
def test_one_pass_over_the_thresholds_equals_one_image_per_k(seed, with_ignore, with_nan, ks):
    from pytest_crbench.science.background import background

    rng = np.random.default_rng(seed)
    ny, nx = rng.integers(20, 120, 2)
    img = rng.normal(100, 5, (ny, nx)).astype(np.float32)
    for _ in range(15):
        y, x = rng.integers(0, ny), rng.integers(0, nx)
        img[max(0, y - 3):y + 3, max(0, x - 3):x + 3] += rng.uniform(10, 2000)
    ignore = rng.random(img.shape) < 0.05 if with_ignore else None
    bkg = background(img, ignore)
    if with_nan:
        img[rng.random(img.shape) < 0.01] = np.nan
    np.testing.assert_array_equal(region_map(img, ignore, ks, bkg=bkg),
                                  _region_map_per_k(img, ignore, ks, bkg))


@given(st.lists(st.integers(1, 300), min_size=0, max_size=6, unique=True),
       st.integers(0, 2**32 - 1), st.sampled_from([np.int16, np.int32, np.uint8]))
def test_region_levels_count_the_regions_of_every_pixel(ks, seed, dtype):
    rng = np.random.default_rng(seed)
    values = np.array([0, *ks, -3, 1, 17, 255])
    rmap = rng.choice(values, size=(5, 7)).astype(dtype)
    expected = sum((rmap >= k).astype(np.uint8) for k in ks) + np.zeros(rmap.shape, np.uint8)
    levels = region_levels(rmap, ks)
    assert levels.dtype == np.uint8 and np.array_equal(levels, expected)
    assert np.array_equal(region_levels(rmap[1:4, ::2], ks), expected[1:4, ::2])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), level_dtype=st.sampled_from([np.float32, np.float64]),
       with_ignore=st.booleans())
def test_region_map_over_several_strips_and_either_background_precision(seed, level_dtype,
                                                                        with_ignore):
    """A chip taller than a strip of rows, and a background map of float32 (SEP's) or
    float64: the same map as one threshold image per k, over the whole image."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    img = rng.normal(100, 5, (700, 37)).astype(np.float32)
    for _ in range(40):
        y, x = rng.integers(0, 700), rng.integers(0, 37)
        img[max(0, y - 3):y + 3, max(0, x - 3):x + 3] += rng.uniform(10, 3000)
    ignore = rng.random(img.shape) < 0.05 if with_ignore else None
    level = (100 + rng.normal(0, 0.5, img.shape)).astype(level_dtype)
    bkg = SimpleNamespace(level=level, rms=float(rng.uniform(4, 6)))
    ks = (3, 5, 10, 20, 40, 80, 160)
    np.testing.assert_array_equal(region_map(img, ignore, ks, bkg=bkg),
                                  _region_map_per_k(img, ignore, ks, bkg))
