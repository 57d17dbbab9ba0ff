"""Properties of the pixel scores (method.md section 3)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from pytest_crbench.science.metrics import Counts, confusion, fbeta, precision, recall, scores

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def masks(draw, n=3):
    shape = draw(shapes)
    return [draw(arrays(bool, shape)) for _ in range(n)]


@given(masks())
def test_perfect_prediction_scores_one_wherever_there_are_positives(ms):
    truth, ignore, _ = ms
    c = confusion(truth, truth, ignore)
    assert c.fp == 0 and c.fn == 0
    sc = scores(c)
    if c.tp:
        assert all(sc[m].value == 1.0 for m in sc)
    else:
        assert all(sc[m].value is None and sc[m].reason for m in sc)


@given(masks(4))
def test_tp_plus_fn_equals_truth_count_inside_region(ms):
    pred, truth, ignore, region = ms
    c = confusion(pred, truth, ignore, region)
    assert c.tp + c.fn == int(np.count_nonzero(truth & region & ~ignore))
    assert c.tp + c.fp == int(np.count_nonzero(pred & region & ~ignore))


@given(masks(4))
def test_ignored_pixels_are_excluded_not_negatives(ms):
    pred, truth, ignore, _ = ms
    c = confusion(pred, truth, ignore)
    flipped = confusion(pred ^ ignore, truth ^ ignore, ignore)  # change only ignored pixels
    assert c == flipped


@given(masks(4), st.integers(0, 2**32 - 1))
def test_invariant_to_pixel_permutation(ms, seed):
    pred, truth, ignore, region = ms
    perm = np.random.default_rng(seed).permutation(pred.size)
    p = lambda a: a.ravel()[perm].reshape(a.shape)
    assert confusion(pred, truth, ignore, region) == confusion(p(pred), p(truth), p(ignore), p(region))


@given(masks(5))
def test_nested_regions_have_nested_counts(ms):
    pred, truth, ignore, outer, inner = ms
    inner = inner & outer
    a, b = confusion(pred, truth, ignore, outer), confusion(pred, truth, ignore, inner)
    assert b.tp <= a.tp and b.fp <= a.fp and b.fn <= a.fn


@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_scores_match_definitions(tp, fp, fn):
    c = Counts(tp, fp, fn)
    p, r = precision(c).value, recall(c).value
    if tp + fp:
        assert p == pytest.approx(tp / (tp + fp))
    else:
        assert p is None
    if tp + fn:
        assert r == pytest.approx(tp / (tp + fn))
    else:
        assert r is None
    for beta in (1.0, 2.0):
        f = fbeta(c, beta).value
        if p and r:
            assert f == pytest.approx((1 + beta**2) * p * r / (beta**2 * p + r))
        if tp == 0 and (fp or fn):
            assert f == 0.0
        assert f is None or 0.0 <= f <= 1.0


def test_counts_add_and_undefined_reasons():
    assert Counts(1, 2, 3) + Counts(4, 5, 6) == Counts(5, 7, 9)
    assert "TP+FP=0" in precision(Counts(0, 0, 4)).reason
    assert "TP+FN=0" in recall(Counts(0, 3, 0)).reason
    assert fbeta(Counts(0, 0, 4), 2).value == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ny=st.integers(1, 40), nx=st.integers(1, 30),
       ks=st.lists(st.integers(1, 200), min_size=0, max_size=5, unique=True),
       strip=st.integers(1, 50), with_ignore=st.booleans())
def test_region_confusion_equals_confusion_per_region(seed, ny, nx, ks, strip,
                                                      with_ignore):
    """One strip-wise bincount pass gives every nested region's counts: those of
    confusion() on that region's mask, for the reference and the truth classes (two
    ignore masks), and the excluded-pixel and audit counts."""
    from pytest_crbench.science.metrics import nested_histograms, region_confusion
    from pytest_crbench.science.regions import region_names, regions_from_map
    from pytest_crbench.science.truth import (TruthClasses, audit_counts,
                                              audit_region_counts)

    rng = np.random.default_rng(seed)
    shape = (ny, nx)
    # a region map holds 0 or one of the ks (region_map's output), or anything between
    values = np.array([0] + list(ks) + [5, 17])
    rmap = rng.choice(values, shape).astype(np.int16)
    pred, ref = rng.random(shape) < 0.3, rng.random(shape) < 0.3
    ignore = rng.random(shape) < 0.2 if with_ignore else np.zeros(shape, bool)
    charge = np.where(rng.random(shape) < 0.3, rng.uniform(0, 100, shape), 0.0)
    truth = TruthClasses(charge > 50, (charge > 0) & (charge <= 50), 5.0)
    masks = regions_from_map(rmap, ks)
    got = region_confusion(pred, ref, rmap, ks, (ignore,))
    got_truth = region_confusion(pred, truth.crmask, rmap, ks, (ignore, truth.excluded))
    got_excluded = nested_histograms(rmap, ks, lambda rows: truth.excluded[rows], 2,
                                     (ignore,))[:, 1]
    got_audit = audit_region_counts(ref, ignore, truth, rmap, ks)
    # strips of any size give the same histograms
    codes = lambda rows: pred[rows].view(np.uint8) * 2 + ref[rows]  # noqa: E731
    np.testing.assert_array_equal(
        nested_histograms(rmap, ks, codes, 4, (ignore,), strip_rows=strip),
        nested_histograms(rmap, ks, codes, 4, (ignore,), strip_rows=ny))
    assert list(masks) == region_names(ks)
    for j, (name, region) in enumerate(masks.items()):
        assert got[j] == confusion(pred, ref, ignore, region), name
        assert got_truth[j] == confusion(pred, truth.crmask, ignore | truth.excluded, region)
        assert got_excluded[j] == np.count_nonzero(truth.excluded & ~ignore & region)
        assert got_audit[j] == audit_counts(ref, ignore, truth, charge, region)
