"""The reference builder against injected truth, and its bad-input errors."""

import numpy as np
import pytest

from conftest import make_group
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.science.metrics import confusion, precision, recall
from pytest_crbench.science.exposures import Exposure, Group
from pytest_crbench.science.reference import ReferenceConfig, build_reference
from pytest_crbench.science.truth import audit_reference, pooled_audit


@pytest.mark.parametrize("n", [2, 3, 6])
def test_reference_recovers_injected_cosmic_rays(n):
    group = make_group(n, seed=n)
    ref = build_reference(group)
    rows = audit_reference(group, ref)
    assert len(rows) == n
    total = pooled_audit(rows)
    # every strong hit (>= 800 e-) is found, the weak neighbour mostly too
    assert total["recall"] > 0.85
    # the 1.5-sigma growth adds noise pixels next to true hits (driz_cr's behaviour):
    # precision stays well above chance and every false pixel touches a true one
    assert total["precision"] > 0.75
    from scipy import ndimage
    hits = sum((e.crtruth > 0).astype(int) for e in group.exposures)
    for exp, mask in zip(group.exposures, ref.crmask):
        truth = exp.crtruth > 0
        # a pixel hit in two exposures can fool a median of three: require the rest
        assert mask[(exp.crtruth > 700) & (hits == 1)].all()
        # (a pixel hit in two of three exposures shifts the median for the third too)
        near_truth = ndimage.binary_dilation(truth | (hits > 1), structure=np.ones((3, 3), bool))
        # pure-noise flags (two low exposures pull a median of three down) stay rare
        assert (mask & ~near_truth).sum() <= 2


def test_clean_image_replaces_only_flagged_pixels():
    group = make_group(4)
    ref = build_reference(group)
    for exp, clean, mask in zip(group.exposures, ref.clean, ref.crmask):
        np.testing.assert_array_equal(clean[~mask], exp.sci[~mask])
        # the clean image lost the injected charge where it was flagged
        resid = (exp.sci - clean)[mask]
        assert np.median(resid - exp.crtruth[mask]) == pytest.approx(0, abs=30)


def test_ignore_mask_has_dq_and_saturation_boxes():
    group = make_group(3)
    exp = group.exposures[0]
    exp.dq[10, 10] = 4
    exp.sci[50, 50] = 80000.0
    ref = build_reference(group, ReferenceConfig(saturation=70000.0, sat_box=7))
    ign = ref.ignore[0]
    assert ign[10, 10]
    assert ign[47:54, 47:54].all()
    assert not ign[46, 50] and not ign[50, 54]
    assert not ref.crmask[0][ign].any()


def test_bad_pixels_of_other_exposures_do_not_enter_the_model():
    group = make_group(3)
    group.exposures[1].sci[20, 20] = 1e6  # a hot pixel flagged in DQ
    group.exposures[1].dq[20, 20] = 16
    group.exposures[2].sci[20, 20] = 1e6
    group.exposures[2].dq[20, 20] = 16
    ref = build_reference(group)
    assert not ref.crmask[0][20, 20]
    assert ref.clean[0][20, 20] < 1e5


def test_exposure_time_scaling_of_a_pair():
    group = make_group(2, exptimes=[500.0, 2000.0], n_cr=0)
    ref = build_reference(group)
    # no cosmic rays, so almost nothing may be flagged despite the 4x flux difference
    for m in ref.crmask:
        assert m.mean() < 0.002


def test_one_exposure_is_refused():
    group = make_group(1)
    with pytest.raises(CRBenchDataError, match="at least 2 exposures"):
        build_reference(group)


def test_bad_config_is_refused():
    with pytest.raises(CRBenchConfigError, match="reference_snr"):
        ReferenceConfig(snr=(5.0, -1.0))
    with pytest.raises(CRBenchConfigError, match="reference_scale"):
        ReferenceConfig(scale="1.2")
    with pytest.raises(CRBenchConfigError, match="reference_grow"):
        ReferenceConfig(grow=0)
    with pytest.raises(CRBenchConfigError, match="reference: expected one of astrodrizzle, noise"):
        ReferenceConfig(rule="median")
    with pytest.raises(CRBenchDataError, match="odd"):
        ReferenceConfig(sat_box=4)


def test_mismatched_shapes_and_nonfinite_pixels_are_refused():
    a = make_group(2).exposures[0]
    b = Exposure(name="small", sci=np.ones((10, 10)), dq=np.zeros((10, 10)), exptime=1.0)
    with pytest.raises(CRBenchDataError, match="'small' has shape"):
        Group(name="g", exposures=[a, b])
    sci = np.ones((8, 8))
    sci[3, 4] = np.nan
    with pytest.raises(CRBenchDataError, match=r"NaN/inf pixel.*y,x=\(3, 4\)"):
        Exposure(name="nan", sci=sci, dq=np.zeros((8, 8)), exptime=1.0)
    with pytest.raises(CRBenchDataError, match="DQ has shape"):
        Exposure(name="dq", sci=np.ones((8, 8)), dq=np.zeros((8, 9)), exptime=1.0)
    with pytest.raises(CRBenchDataError, match="exposure time"):
        Exposure(name="t", sci=np.ones((8, 8)), dq=np.zeros((8, 8)), exptime=0.0)


def test_dithered_group_reference_through_the_wcs():
    """A dithered group (sub-pixel and integer shifts, WCS only) gives a reference as
    good as a same-pointing one: neighbours are resampled onto each exposure's grid."""
    from pytest_crbench.datasets.simulate import simulate_dithered_group

    group = simulate_dithered_group(shape=(160, 160), seed=3)
    assert group.kind == "dithered" and len(group.exposures) == 3
    ref = build_reference(group, ReferenceConfig(rule="noise"))
    rows = audit_reference(group, ref)
    total = pooled_audit(rows)
    assert total["recall"] > 0.9  # measured 0.96
    assert total["precision"] > 0.8  # measured 0.89 (1.5-sigma growth, interpolation)
    assert all(r["recall_significant"] > 0.95 for r in rows)
    # driz_cr's derivative term also protects the interpolation error of the resampled
    # model, at the price of some faint hits (measured recall 0.84, precision 0.86)
    drizzle = pooled_audit(audit_reference(group, build_reference(group)))
    assert drizzle["recall"] > 0.78 and drizzle["precision"] > 0.8
    for exp, ign in zip(group.exposures, ref.ignore):
        # only the borders not covered by every neighbour (and bad pixels) are ignored
        assert ign.mean() < 0.25


@pytest.mark.parametrize("n", [2, 3, 6])
def test_shared_median_equals_the_per_exposure_model(n):
    """build_reference computes a same-pointing group's median once; it must give every
    exposure the model blotted_model gives it alone, bad pixels included."""
    from pytest_crbench.science.reference import blotted_model, blotted_models

    group = make_group(n, seed=11)
    for k, exp in enumerate(group.exposures):
        exp.dq[3, 3 + k] = 1
    for exp in group.exposures[:2]:
        exp.dq[5, 5] = 1  # in a pair, no other good value at all
    for i, (model, var, covered) in enumerate(blotted_models(group)):
        model1, var1, covered1 = blotted_model(group, i)
        np.testing.assert_array_equal(model, model1)
        np.testing.assert_array_equal(covered, covered1)
        np.testing.assert_allclose(var, var1, rtol=1e-6)
    # the last exposure has another good value at (5, 5) only with a third one besides
    assert covered1[5, 5] == (n > 3)
