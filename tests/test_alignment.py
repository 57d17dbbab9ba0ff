"""WCS alignment of a simulated dithered group: known shifts recovered to < 0.1 px."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_crbench.science.alignment import (
    blot_back, estimate_shift, resample_onto, wcs_offset)
from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.exposures import Exposure, Group

H, W = 240, 320
SHIFTS = [(0.0, 0.0), (2.3, -1.7), (-3.45, 4.15), (0.5, 0.5)]  # (dy, dx) in pixels
SCALE = 0.05 / 3600.0


def _stars(seed=3, n=150):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-10, H + 10, n), rng.uniform(-10, W + 10, n),
                 rng.uniform(500, 8000, n)]


def _render(stars, dy, dx, sigma=1.1):
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.zeros((H, W))
    for y, x, f in stars:
        img += f / (2 * np.pi * sigma ** 2) * np.exp(
            -((yy - y - dy) ** 2 + (xx - x - dx) ** 2) / (2 * sigma ** 2))
    return img


def _wcs(dy, dx, rot_deg=0.0):
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    return dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.1, CRVAL2=2.2,
                CRPIX1=160.0 + dx, CRPIX2=120.0 + dy, CD1_1=-SCALE * c, CD1_2=SCALE * s,
                CD2_1=SCALE * s, CD2_2=SCALE * c)


@pytest.fixture(scope="module")
def group():
    stars = _stars()
    rng = np.random.default_rng(7)
    exps = []
    for i, (dy, dx) in enumerate(SHIFTS):
        sci = _render(stars, dy, dx) + 50 + rng.normal(0, 4, (H, W))
        exps.append(Exposure(name=f"dith{i}", sci=sci, dq=np.zeros((H, W)), exptime=500.0,
                             wcs_header=_wcs(dy, dx)))
    return Group("dithered", exps, kind="dithered")


def test_estimate_shift_recovers_known_shifts(group):
    ref = group.exposures[0].sci
    for exp, (dy, dx) in zip(group.exposures, SHIFTS):
        ey, ex = estimate_shift(ref, exp.sci)
        assert abs(ey - dy) < 0.1 and abs(ex - dx) < 0.1
        wy, wx = wcs_offset(group.exposures[0], exp)
        assert abs(wy - dy) < 1e-6 and abs(wx - dx) < 1e-6


@pytest.mark.parametrize("target", [0, 2])
def test_resample_onto_aligns_to_target(group, target):
    exps = group.exposures
    cube = resample_onto(exps, target)
    assert cube.shape == (len(exps) - 1, H, W) and cube.dtype == np.float32
    others = [i for i in range(len(exps)) if i != target]
    for plane, i in zip(cube, others):
        # NaN exactly where the neighbour does not cover the target's pixels
        ddy, ddx = SHIFTS[i][0] - SHIFTS[target][0], SHIFTS[i][1] - SHIFTS[target][1]
        nan = np.isnan(plane)
        expected_rows = int(np.ceil(abs(ddy) - 0.5)) if abs(ddy) > 0.5 else 0
        if abs(ddy) < 0.49 and abs(ddx) < 0.49:
            assert not nan.any()
        assert nan.mean() < 0.06
        assert abs(nan.all(axis=1).sum() - expected_rows) <= 1
        ry, rx = estimate_shift(exps[target].sci, plane)
        assert abs(ry) < 0.1 and abs(rx) < 0.1
        good = ~nan
        resid = (plane - exps[target].sci)[good]
        assert abs(np.median(resid)) < 1.0 and np.std(resid) < 20


def test_refine_corrects_a_slightly_wrong_wcs(group):
    exps = [Exposure(name=e.name, sci=e.sci, dq=e.dq, exptime=e.exptime,
                     wcs_header=dict(e.wcs_header)) for e in group.exposures[:3]]
    exps[2].wcs_header["CRPIX1"] += 0.6  # 0.6 px WCS error
    plain = resample_onto(exps, 0)
    assert abs(estimate_shift(exps[0].sci, plain[1])[1]) > 0.4
    refined = resample_onto(exps, 0, refine=True)
    ry, rx = estimate_shift(exps[0].sci, refined[1])
    assert abs(ry) < 0.1 and abs(rx) < 0.1
    exps[2].wcs_header["CRPIX1"] += 10  # far off: an error, not a silent wrong answer
    with pytest.raises(CRBenchDataError, match="residual offset"):
        resample_onto(exps, 0, refine=True)


def test_pixel_map_matches_exact_mapping():
    from pytest_crbench.science.alignment import exposure_wcs, pixel_map

    a = Exposure("a", np.zeros((2048, 1024)), np.zeros((2048, 1024)), 1.0,
                 wcs_header=_wcs(0, 0))
    wb = exposure_wcs(Exposure("b", np.zeros((8, 8)), np.zeros((8, 8)), 1.0,
                               wcs_header=_wcs(30.2, -17.7, rot_deg=1.5)))
    wa = exposure_wcs(a)
    sy, sx = pixel_map(wb, wa, a.shape)
    yy, xx = np.mgrid[0:2048:7, 0:1024:5].astype(float)
    ex, ey = wb.world_to_pixel_values(*wa.pixel_to_world_values(xx, yy))
    assert np.max(np.abs(sy[::7, ::5] - ey)) < 1e-3 and np.max(np.abs(sx[::7, ::5] - ex)) < 1e-3


def test_rotated_dither_and_blot_back():
    stars = _stars(seed=5)
    rng = np.random.default_rng(2)
    # exposure B rotated by 0.3 deg about its reference pixel and shifted
    a = Exposure("a", _render(stars, 0, 0) + rng.normal(0, 2, (H, W)), np.zeros((H, W)), 100.0,
                 wcs_header=_wcs(0, 0))
    # render B: where does each star fall in B's grid? use the WCS to place them
    from pytest_crbench.science.alignment import exposure_wcs

    wb = _wcs(1.2, -0.8, rot_deg=0.3)
    wa_obj = exposure_wcs(a)
    ra, dec = wa_obj.pixel_to_world_values(stars[:, 1], stars[:, 0])
    b_tmp = Exposure("tmp", np.zeros((H, W)), np.zeros((H, W)), 1.0, wcs_header=wb)
    bx, by = exposure_wcs(b_tmp).world_to_pixel_values(ra, dec)
    stars_b = np.c_[by, bx, stars[:, 2]]
    b = Exposure("b", _render(stars_b, 0, 0) + rng.normal(0, 2, (H, W)), np.zeros((H, W)),
                 100.0, wcs_header=wb)
    (onto_a,) = resample_onto([a, b], 0)
    ry, rx = estimate_shift(a.sci, onto_a)
    assert abs(ry) < 0.1 and abs(rx) < 0.1
    back = blot_back(onto_a, a, b)  # A's grid → B's grid
    ry, rx = estimate_shift(b.sci, back)
    assert abs(ry) < 0.1 and abs(rx) < 0.1


def test_bad_dq_pixels_become_nan_when_asked(group):
    exps = group.exposures[:2]
    dq = np.zeros((H, W), np.int32)
    dq[100, 100] = 4
    b = Exposure("b", exps[1].sci, dq, 500.0, wcs_header=exps[1].wcs_header)
    cube = resample_onto([exps[0], b], 0, mask_bad=True)
    assert np.isnan(cube[0]).sum() > np.isnan(resample_onto([exps[0], b], 0)[0]).sum()


def test_missing_or_non_celestial_wcs_is_an_error(group):
    e0 = group.exposures[0]
    no_wcs = Exposure("nowcs", e0.sci, e0.dq, 1.0, source="x_flt.fits[SCI,1]")
    with pytest.raises(CRBenchDataError, match=r"x_flt.fits\[SCI,1\]: no WCS"):
        resample_onto([e0, no_wcs], 0)
    spec = Exposure("spec", e0.sci, e0.dq, 1.0, wcs_header=dict(
        CTYPE1="WAVE", CTYPE2="ANGLE", CRVAL1=4961.0, CRVAL2=0.0, CRPIX1=1.0, CRPIX2=1.0,
        CD1_1=0.55, CD2_2=1.4e-5, CD1_2=0.0, CD2_1=0.0))
    with pytest.raises(CRBenchDataError, match="not celestial"):
        resample_onto([e0, spec], 0)
    with pytest.raises(CRBenchDataError, match="out of range"):
        resample_onto([e0], 3)
