"""Photometry against analytic cases: Gaussian stars of known flux on a noisy sky."""

import math

import numpy as np
import pytest

from pytest_crbench.science.cleaning import cleaned_image
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.science.photometry import (PHOT_DTYPE, PhotometryConfig, find_group_stars,
                                               find_stars, match_stars, measure_stars)
from pytest_crbench.science.photometry_summary import (concatenate, photometry_summary,
                                                       stars_to_rows)
from pytest_crbench.science.gallery import worst_stars

SKY, RN, SIGMA = 60.0, 5.0, 1.2


def star_image(stars, shape=(160, 160), seed=0, sky=SKY, sigma=SIGMA, noise=True):
    """(noisy image, noise-free model, error image) with Gaussian stars (x, y, flux)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    model = np.full(shape, sky)
    for x, y, flux in stars:
        model += flux / (2 * np.pi * sigma**2) * np.exp(
            -((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    err = np.sqrt(model + RN**2)
    img = model + np.random.default_rng(seed).normal(0, 1, shape) * err if noise else model
    return img, model, err


STARS = ((40.3, 50.6, 8e3), (110.2, 45.1, 3e4), (80.0, 115.0, 1.5e5))


@pytest.fixture(scope="module")
def field():
    clean, model, err = star_image(STARS)
    stars = find_stars(clean, None, name="field")
    return clean, model, err, stars


def test_finds_the_injected_stars(field):
    clean, _, _, stars = field
    assert len(stars) == 3
    got = sorted(zip(stars["x"], stars["y"]))
    for (x, y, _), (gx, gy) in zip(sorted(STARS), got):
        assert abs(gx - x) < 0.1 and abs(gy - y) < 0.1
    assert (stars["area"] > 16).all()
    assert set(stars["size_bin"]) <= {"16-50", "50-200", "200-400", ">400"}
    np.testing.assert_allclose(stars["radius"], np.clip(np.sqrt(stars["area"] / np.pi), 2, 25))


def test_flux_matches_analytic_value(field):
    clean, model, err, stars = field
    m = measure_stars(clean, clean, clean, err, None, stars, exposure="e")
    order = np.argsort(m["x"])
    for (x, y, flux), row in zip(sorted(STARS), m[order]):
        r = row["radius"]
        enclosed = flux * (1 - math.exp(-r * r / (2 * SIGMA**2)))
        # within 4 sigma_F of the analytic enclosed flux (pixelation adds < 1 %)
        assert abs(row["flux_clean"] - enclosed) < 4 * row["flux_err"] + 0.01 * enclosed
        assert row["flux_err"] > 0
    assert np.allclose(m["ratio_cleaned"], 1.0) and not m["contaminated"].any()
    assert not m["anomalous"].any()


def test_flux_error_is_sqrt_sum_err_squared(field):
    clean, _, _, stars = field
    err = np.full(clean.shape, 7.0)
    m = measure_stars(clean, clean, clean, err, None, stars[:1])
    # sum_circle with subpix: effective area ~ pi r^2
    assert m["flux_err"][0] == pytest.approx(7.0 * math.sqrt(math.pi) * m["radius"][0], rel=0.02)


def _with_cr(clean, star, charge=4000.0):
    orig = clean.copy()
    x, y = int(round(star["x"])), int(round(star["y"]))
    orig[y, x] += charge
    orig[y, x + 1] += charge / 4
    cr = np.zeros(clean.shape, bool)
    cr[y, x] = cr[y, x + 1] = True
    return orig, cr


def test_cr_on_star_is_contaminated_and_perfect_cleaning_is_not_anomalous(field):
    clean, _, err, stars = field
    faint = stars[np.argmin(stars["flux_iso"])]
    orig, cr = _with_cr(clean, faint)
    m = measure_stars(orig, clean, clean, err, None, stars)
    row = m[m["star_id"] == faint["star_id"]][0]
    assert row["contaminated"]
    assert row["ratio_original"] == pytest.approx(1 + 5000 / row["flux_clean"], rel=1e-6)
    assert not row["anomalous"] and row["ratio_cleaned"] == pytest.approx(1.0)
    others = m[m["star_id"] != faint["star_id"]]
    assert not others["contaminated"].any()


def test_detector_missing_the_cr_gives_ratio_above_one(field):
    clean, _, err, stars = field
    faint = stars[np.argmin(stars["flux_iso"])]
    orig, cr = _with_cr(clean, faint)
    cleaned = cleaned_image(orig, np.zeros_like(cr))  # detected nothing
    row = measure_stars(orig, clean, cleaned, err, None, stars[stars["star_id"] ==
                                                                 faint["star_id"]])[0]
    assert row["ratio_cleaned"] > 1.1 and row["anomalous"]


def test_detector_masking_the_whole_star_gives_ratio_below_one(field):
    clean, _, err, stars = field
    faint = stars[np.argmin(stars["flux_iso"])]
    orig, cr = _with_cr(clean, faint)
    mask = np.zeros_like(cr)
    x, y = int(round(faint["x"])), int(round(faint["y"]))
    mask[y - 3:y + 4, x - 3:x + 4] = True  # the whole star, CR included
    row = measure_stars(orig, clean, cleaned_image(orig, mask), err, None,
                        stars[stars["star_id"] == faint["star_id"]])[0]
    assert row["ratio_cleaned"] < 0.5 and row["anomalous"]


def test_detector_own_cleaned_image_is_used(field):
    clean, _, err, stars = field
    orig, cr = _with_cr(clean, stars[0])
    own = clean * 1.0
    out = cleaned_image(orig, cr, detector_cleaned=own)
    np.testing.assert_array_equal(out, own)
    # used as it is (no full-frame copy) when its dtype fits, and left unchanged
    assert out is own
    np.testing.assert_array_equal(own, clean * 1.0)
    m = measure_stars(orig, clean, out, err, None, stars)
    assert np.allclose(m["ratio_cleaned"], 1.0, atol=1e-5)


def test_criteria_axis_ratio_edge_margin_and_ignored():
    shape = (160, 160)
    img, _, err = star_image(((80.0, 80.0, 3e4), (10.0, 80.0, 3e4), (40.0, 40.0, 3e4)),
                             shape=shape, seed=1)
    # an elongated source: two blended Gaussians along x
    _, elongated, _ = star_image(((118.0, 120.0, 2e4), (120.5, 120.0, 2e4)), shape=shape,
                                 sky=0.0, noise=False)
    img = img + elongated
    ignore = np.zeros(shape, bool)
    ignore[38:43, 38:43] = True  # the star at (40, 40) is "saturated"
    cfg = PhotometryConfig()
    assert cfg.margin(shape) == 20  # min(128, 160 // 8)
    stars = find_stars(img, ignore, cfg, name="x")
    assert len(stars) == 1
    assert stars["x"][0] == pytest.approx(80, abs=0.1)
    # without the margin the edge star is back (its aperture still fits)
    loose = find_stars(img, ignore, PhotometryConfig(edge_margin=5), name="x")
    assert len(loose) == 2


def test_edge_margin_rule():
    cfg = PhotometryConfig()
    assert cfg.margin((2048, 4096)) == 128
    assert cfg.margin((1024, 1024)) == 128
    assert cfg.margin((512, 512)) == 64
    assert cfg.margin((100, 300)) == 12
    assert PhotometryConfig(edge_margin=16).margin((4096, 4096)) == 16


def test_size_bins():
    cfg = PhotometryConfig()
    assert list(cfg.size_bin([16, 17, 50, 51, 200, 201, 400, 401])) == [
        "<=16", "16-50", "16-50", "50-200", "50-200", "200-400", "200-400", ">400"]


def test_config_validation():
    with pytest.raises(CRBenchConfigError, match="axis_ratio"):
        PhotometryConfig(axis_ratio=(1.1, 1.2))
    with pytest.raises(CRBenchConfigError, match="size_bins"):
        PhotometryConfig(size_bins=((50, 16),))
    with pytest.raises(CRBenchConfigError, match="aperture_rule"):
        PhotometryConfig(aperture_rule="kron")
    cfg = PhotometryConfig(aperture_rule="a")
    assert cfg.radius([30], [1.5])[0] == pytest.approx(3.75)


def test_no_star_found_names_the_exposure():
    img = np.random.default_rng(0).normal(100, 5, (128, 128))
    with pytest.raises(CRBenchDataError, match=r"exp-7.*no star found.*0 object"):
        find_stars(img, None, name="group 'g', exposure 'exp-7'")


def test_all_ignored_image_names_the_exposure(field):
    clean, _, err, stars = field
    ign = np.ones(clean.shape, bool)
    with pytest.raises(CRBenchDataError, match="exp-3.*every pixel is ignored"):
        find_stars(clean, ign, name="exp-3")
    with pytest.raises(CRBenchDataError, match="exp-3.*every pixel is ignored"):
        measure_stars(clean, clean, clean, err, ign, stars, exposure="exp-3")


def test_bad_shapes_and_values(field):
    clean, _, err, stars = field
    with pytest.raises(CRBenchDataError, match="e1.*shape"):
        measure_stars(clean, clean[:10], clean, err, None, stars, exposure="e1")
    bad = clean.copy()
    bad[3, 3] = np.nan
    with pytest.raises(CRBenchDataError, match="e2.*NaN"):
        measure_stars(clean, clean, bad, err, None, stars, exposure="e2")


def test_big_endian_input_is_accepted(field):
    clean, _, err, _ = field
    be = clean.astype(">f4")
    stars = find_stars(be, None)
    m = measure_stars(be, be, be, err.astype(">f4"), None, stars)
    assert len(m) == 3


# ------------------------------------------------------------------ matching

def _wcs(crval1, crval2, crpix=(80.0, 80.0), scale=0.05):
    return {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": crpix[0],
            "CRPIX2": crpix[1], "CRVAL1": crval1, "CRVAL2": crval2,
            "CD1_1": -scale / 3600, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": scale / 3600}


def _stars(xy):
    s = np.zeros(len(xy), dtype=[("x", "f8"), ("y", "f8")])
    s["x"], s["y"] = np.array(xy, float).T
    return s


def test_match_across_dithers_with_wcs():
    rng = np.random.default_rng(4)
    xy = rng.uniform(20, 140, (12, 2))
    shift = np.array([7.3, -4.6])  # pixels, the dither
    a = _stars(xy)
    b = _stars(xy[::-1] + shift + rng.normal(0, 0.2, xy.shape))  # 0.01" jitter
    # exposure b's pointing moved so that sky positions agree: CRPIX moved by the shift
    ha = _wcs(150.0, 60.0)
    hb = _wcs(150.0, 60.0, crpix=(80.0 + shift[0], 80.0 + shift[1]))
    ida, idb = match_stars([a, b], [ha, hb], group="dith", names=["a", "b"])
    assert sorted(ida) == list(range(12))
    np.testing.assert_array_equal(idb, ida[::-1])
    # a 0.5" (10 px) mis-registration defeats 0.1" matching: no overlap -> clear error
    hc = _wcs(150.0, 60.0, crpix=(90.0 + shift[0], 80.0 + shift[1]))
    with pytest.raises(CRBenchDataError, match=r"group 'dith'.*exposure\(s\) 'a' \(12 stars\), 'c'.*0.1 arcsec"):
        match_stars([a, b], [ha, hc], group="dith", names=["a", "c"])


def test_match_in_pixels_without_wcs_and_partial_overlap():
    a = _stars([(10, 10), (50, 50), (90, 90)])
    b = _stars([(50.2, 49.9), (10.1, 10.0), (130, 130)])
    ida, idb = match_stars([a, b], None, names=["a", "b"])
    assert list(ida) == [0, 1, 2]
    assert list(idb) == [1, 0, 3]  # the star only in b gets a new id


def test_non_overlapping_group_raises():
    a = _stars([(10, 10), (50, 50)])
    b = _stars([(110, 10), (150, 50)])
    with pytest.raises(CRBenchDataError, match=r"group 'g7'.*'a'.*'b'.*do not overlap"):
        match_stars([a, b], [None, None], group="g7", names=["a", "b"])


def test_find_group_stars_shares_ids_centres_and_radii():
    cleans = [star_image(STARS, seed=s)[0] for s in range(3)]
    lists = find_group_stars(cleans, [None] * 3, group="g", names=["a", "b", "c"])
    for s in lists[1:]:
        np.testing.assert_array_equal(np.sort(s["star_id"]), np.sort(lists[0]["star_id"]))
    by_id = [dict(zip(s["star_id"], zip(s["x"], s["y"], s["radius"]))) for s in lists]
    for k in by_id[0]:
        assert by_id[0][k] == by_id[1][k] == by_id[2][k]


# ------------------------------------------------------------------ summary

def _table(rows):
    t = np.zeros(len(rows), dtype=PHOT_DTYPE)
    for i, (cont, anom, ratio, sbin) in enumerate(rows):
        t[i]["contaminated"], t[i]["anomalous"] = cont, anom
        t[i]["ratio_cleaned"], t[i]["size_bin"] = ratio, sbin
        t[i]["star_id"] = i
    return t


def test_summary_fractions_and_populations():
    t = _table([(True, True, 0.8, "16-50"), (True, False, 1.0, "16-50"),
                (True, False, 1.05, "50-200"), (False, False, 1.0, "50-200"),
                (False, True, 0.5, "50-200")])
    s = photometry_summary(t)
    o = s["overall"]
    assert o["n"] == 5 and o["n_contaminated"] == 3
    assert o["contaminated"] == pytest.approx(3 / 5)
    assert o["anomalous"] == pytest.approx(1 / 3)  # of contaminated
    assert o["anomalous_of_all"] == pytest.approx(2 / 5)
    assert o["inside_97_103"] == pytest.approx(1 / 3)
    assert o["outside_90_110"] == pytest.approx(1 / 3)
    assert o["inside_97_103_of_all"] == pytest.approx(2 / 5)
    b = s["by_size"]
    assert b["16-50"]["anomalous"] == pytest.approx(0.5)
    assert b["200-400"]["n"] == 0 and b["200-400"]["anomalous"] is None
    assert "no star" in b["200-400"]["reasons"]["anomalous"]
    assert "contaminated" in s["population"]


def test_summary_empty_is_none_not_zero():
    s = photometry_summary(np.zeros(0, dtype=PHOT_DTYPE))
    assert s["overall"]["contaminated"] is None and s["overall"]["n"] == 0
    assert s["overall"]["reasons"]["contaminated"] == "no star measured"
    t = _table([(False, False, 1.0, "16-50")])
    s = photometry_summary(stars_to_rows(t))  # list of dicts works too
    assert s["overall"]["contaminated"] == 0.0
    assert s["overall"]["anomalous"] is None
    assert s["overall"]["reasons"]["anomalous"] == "no contaminated star"


def test_worst_stars_and_concatenate():
    t = _table([(True, True, 0.8, "16-50"), (True, True, 1.5, "16-50"),
                (True, False, 1.0, "16-50")])
    w = worst_stars(t, 5)
    assert list(w["star_id"]) == [1, 0]
    assert len(concatenate([t, t])) == 6 and len(concatenate([])) == 0


def test_a_shared_background_gives_the_same_stars_and_fluxes(field):
    """The prepared exposure's background (made once, kept as its mesh) is the one star
    finding and photometry would make; a pickled copy carries its maps."""
    import pickle

    from pytest_crbench.science.background import background

    clean, _, err, stars = field
    bkg = background(clean, None)
    shared = find_stars(clean, None, name="field", bkg=bkg)
    np.testing.assert_array_equal(shared, stars)
    orig, cr = _with_cr(clean, stars[0])
    cleaned = cleaned_image(orig, cr)
    own = measure_stars(orig, clean, cleaned, err, None, stars)
    np.testing.assert_array_equal(
        measure_stars(orig, clean, cleaned, err, None, stars, bkg=bkg), own)
    # a non-default mesh is not the shared background's: made anew
    other = PhotometryConfig(background_box=16)
    assert not np.array_equal(measure_stars(orig, clean, cleaned, None, None, stars, other,
                                            bkg=bkg)["flux_clean"],
                              measure_stars(orig, clean, cleaned, None, None, stars,
                                            bkg=bkg)["flux_clean"])
    copy = pickle.loads(pickle.dumps(bkg))
    np.testing.assert_array_equal(copy.level, bkg.level)
    np.testing.assert_array_equal(copy.rms_map, bkg.rms_map)
    copy.level[:] = 0  # the caller's own array: the copy's maps are unchanged
    assert copy.level.any() and copy.rms == bkg.rms
