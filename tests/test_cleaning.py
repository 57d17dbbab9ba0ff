"""The one fill method for mask-only detectors, and the choice of the cleaned image."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pytest_crbench.science.cleaning import FILL_BOX, cleaned_image, fill_masked
from pytest_crbench.errors import CRBenchDataError


def test_single_pixel_gets_median_of_5x5_neighbours():
    img = np.arange(49, dtype=float).reshape(7, 7)
    mask = np.zeros((7, 7), bool)
    mask[3, 3] = True
    img[3, 3] = 1e6
    out = fill_masked(img, mask)
    box = np.delete(img[1:6, 1:6].ravel(), 12)
    assert out[3, 3] == pytest.approx(np.median(box))
    assert np.array_equal(out[~mask], img[~mask])


def test_ignored_pixels_are_not_used_and_keep_their_value():
    img = np.full((9, 9), 10.0)
    img[2:7, 2:7] = 10.0
    ignore = np.zeros((9, 9), bool)
    ignore[2:4, 2:7] = True
    img[ignore] = 5000.0  # bad pixels: must not leak into the fill
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    img[4, 4] = 999.0
    out = fill_masked(img, mask, ignore)
    assert out[4, 4] == 10.0
    assert np.array_equal(out[ignore], img[ignore])


def test_window_grows_where_all_masked_and_clips_at_edges():
    img = np.full((20, 20), 3.0)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True  # 10x10 block: centre pixels have no usable 5x5 neighbour
    img[mask] = 1000.0
    out = fill_masked(img, mask)
    assert np.allclose(out, 3.0)
    corner = np.zeros((20, 20), bool)
    corner[:3, :3] = True
    assert np.allclose(fill_masked(img, corner)[:3, :3], 3.0)


def test_everything_masked_or_ignored_raises():
    img = np.ones((5, 5))
    with pytest.raises(CRBenchDataError, match="every pixel is masked or ignored"):
        fill_masked(img, np.ones((5, 5), bool))
    half = np.zeros((5, 5), bool)
    half[:, :2] = True
    with pytest.raises(CRBenchDataError, match="every pixel"):
        fill_masked(img, half, ~half)


def test_shape_mismatch_raises():
    with pytest.raises(CRBenchDataError, match="mask has shape"):
        fill_masked(np.ones((5, 5)), np.ones((4, 5), bool))
    with pytest.raises(CRBenchDataError, match="detector_cleaned has shape"):
        cleaned_image(np.ones((5, 5)), np.zeros((5, 5), bool), np.ones((3, 3)))


def test_idw_method_recovers_smooth_surface():
    yy, xx = np.mgrid[:30, :30].astype(float)
    img = 2 * xx + 3 * yy + 7
    mask = np.zeros(img.shape, bool)
    mask[10, 10] = mask[20, 21] = True
    orig = img.copy()
    orig[mask] = 1e5
    out = fill_masked(orig, mask, method="idw")
    np.testing.assert_allclose(out[mask], img[mask])  # symmetric weights: exact on a plane
    with pytest.raises(ValueError, match="median' or 'idw"):
        fill_masked(orig, mask, method="spline")


def test_cleaned_image_prefers_detector_image():
    img = np.ones((6, 6))
    own = np.full((6, 6), 2.0)
    mask = np.zeros((6, 6), bool)
    mask[2, 2] = True
    assert np.array_equal(cleaned_image(img, mask, own), own)
    img2 = img.copy()
    img2[2, 2] = 50
    assert np.array_equal(cleaned_image(img2, mask), img)
    bad = own.copy()
    bad[0, 0] = np.nan
    with pytest.raises(CRBenchDataError, match="NaN"):
        cleaned_image(img, mask, bad)


def test_large_image_is_fast_enough():
    import time

    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (1024, 1024)).astype(np.float32)
    mask = rng.random(img.shape) < 0.03
    t = time.perf_counter()
    out = fill_masked(img, mask)
    assert time.perf_counter() - t < 5.0
    assert out.dtype == np.float32
    assert abs(float(out[mask].mean()) - 100) < 0.5


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.floats(-1e4, 1e4)),
       st.data())
def test_unmasked_pixels_unchanged_and_fill_within_range(img, data):
    mask = data.draw(arrays(bool, img.shape))
    if mask.all():
        mask.flat[0] = False
    out = fill_masked(img, mask)
    assert np.array_equal(out[~mask], img[~mask])
    assert np.isfinite(out).all()
    lo, hi = img[~mask].min(), img[~mask].max()
    assert ((out[mask] >= lo - 1e-9) & (out[mask] <= hi + 1e-9)).all()


def _median_fill_padded(image, mask, ignore, half):
    """The growing-box median fill written the direct way (NaN-padded full frame)."""
    out = np.array(image, dtype=np.float32)
    unusable = mask | ignore
    source = np.where(unusable, np.nan, image.astype(np.float64))
    ys, xs = np.nonzero(mask)
    while ys.size:
        padded = np.pad(source, half, mode="constant", constant_values=np.nan)
        offs = np.arange(-half, half + 1)
        dy, dx = np.meshgrid(offs, offs, indexing="ij")
        windows = padded[ys[:, None] + half + dy.ravel()[None, :],
                         xs[:, None] + half + dx.ravel()[None, :]]
        has = np.isfinite(windows).any(axis=1)
        if has.any():
            out[ys[has], xs[has]] = np.nanmedian(windows[has], axis=1)
        ys, xs = ys[~has], xs[~has]
        half += 1
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), blob=st.integers(1, 14))
def test_median_fill_gathers_boxes_as_a_padded_frame_would(seed, blob):
    """Masked blobs wider than the box force the growing-box fallback, at the edges too."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, (30, 40)).astype(np.float32)
    mask = rng.random(image.shape) < 0.05
    y0, x0 = rng.integers(0, 30), rng.integers(0, 40)
    mask[y0:y0 + blob, x0:x0 + blob] = True
    ignore = rng.random(image.shape) < 0.05
    got = fill_masked(image, mask, ignore, method="median")
    np.testing.assert_array_equal(got, _median_fill_padded(image, mask, ignore, FILL_BOX // 2))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ny=st.integers(1, 30), nx=st.integers(1, 30),
       masked=st.floats(0.0, 1.0), half=st.integers(1, 3))
def test_idw_sums_equal_the_convolution_bit_for_bit(seed, ny, nx, masked, half):
    from scipy import ndimage

    from pytest_crbench.science.cleaning import _idw_sums

    rng = np.random.default_rng(seed)
    image = rng.normal(100, 30, (ny, nx)).astype(np.float32)
    unusable = rng.random(image.shape) < masked
    offs = np.arange(-half, half + 1)
    d2 = (offs[:, None] ** 2 + offs[None, :] ** 2).astype(float)
    kernel = np.where(d2 > 0, 1.0 / np.maximum(d2, 1.0), 0.0)
    usable = ~unusable
    num = ndimage.convolve(np.where(usable, image, 0.0).astype(np.float64), kernel,
                           mode="constant")
    den = ndimage.convolve(usable.astype(np.float64), kernel, mode="constant")
    ys, xs = np.nonzero(np.ones(image.shape, bool))  # every pixel, the edges included
    got_num, got_den = _idw_sums(image, unusable, ys, xs, half)
    np.testing.assert_array_equal(got_num, num[ys, xs])
    np.testing.assert_array_equal(got_den, den[ys, xs])
