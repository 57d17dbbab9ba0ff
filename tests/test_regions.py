"""Star regions: thresholds in units of the background RMS, nesting, the REGION map."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import scene
from pytest_crbench.science.background import background
from pytest_crbench.science.regions import region_map, region_name, regions_from_map


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
    regions = regions_from_map(region_map(img, None, ks), ks)
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
