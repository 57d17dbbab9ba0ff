"""Properties of the pixel scores (method.md section 3)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from pytest_crbench.science.metrics import (
    Counts, confusion, fbeta, precision, recall, region_tables, scores)
from pytest_crbench.science.regions import region_map, region_names

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


def _per_region(rmap, ks):
    """The region masks the one-pass tables stand for: the whole image, rmap >= k."""
    return dict(zip(region_names(ks), [np.ones(rmap.shape, bool)]
                    + [rmap >= k for k in sorted(ks)]))


@st.composite
def region_cases(draw):
    """1-4 masks, an ignore mask (or None) and a region map of values {0} ∪ ks."""
    shape = draw(shapes)
    ks = draw(st.lists(st.integers(1, 200), max_size=7, unique=True))
    ms = [draw(arrays(bool, shape)) for _ in range(draw(st.integers(1, 4)))]
    ignore = draw(st.none() | arrays(bool, shape))
    rmap = draw(arrays(np.int16, shape, elements=st.sampled_from([0, *ks])))
    return ms, ignore, rmap, ks


@settings(max_examples=300)
@given(region_cases(), st.integers(1, 13))
def test_region_tables_equal_the_confusion_of_every_region(case, strip):
    ms, ignore, rmap, ks = case
    tables = region_tables(ms, ignore, rmap, ks, strip_rows=strip)
    assert list(tables) == region_names(ks)
    ign = np.zeros(rmap.shape, bool) if ignore is None else ignore
    for name, region in _per_region(rmap, ks).items():
        t = tables[name]
        assert t.count() == int(np.count_nonzero(region & ~ign))
        for i, mi in enumerate(ms):
            assert t.count(i) == int(np.count_nonzero(mi & region & ~ign))
            for j, mj in enumerate(ms):
                assert t.confusion(i, j) == confusion(mi, mj, ignore, region)
                assert t.confusion(i, (j, 0)) == confusion(mi, mj | ms[0], ignore, region)
                for o, mo in enumerate(ms):  # mask o left out, as an ignored pixel
                    assert t.confusion(i, j, leave_out=o) == confusion(mi, mj, ign | mo, region)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ny=st.integers(1, 40), nx=st.integers(1, 30),
       ks=st.lists(st.integers(1, 200), min_size=0, max_size=5, unique=True),
       strip=st.integers(1, 50), with_ignore=st.booleans())
def test_score_and_audit_tables_equal_confusion_per_region(seed, ny, nx, ks, strip,
                                                           with_ignore):
    """The one-pass tables give every nested region's counts: those of confusion() on
    that region's mask, for the reference and the truth classes (excluded pixels left
    out), the excluded-pixel counts and the reference audit."""
    from pytest_crbench.science.truth import AuditCounts, TruthClasses, audit_counts

    rng = np.random.default_rng(seed)
    shape = (ny, nx)
    # a region map holds 0 or one of the ks (region_map's output), or anything between
    values = np.array([0] + list(ks) + [5, 17])
    rmap = rng.choice(values, shape).astype(np.int16)
    pred, ref = rng.random(shape) < 0.3, rng.random(shape) < 0.3
    ignore = rng.random(shape) < 0.2 if with_ignore else np.zeros(shape, bool)
    charge = np.where(rng.random(shape) < 0.3, rng.uniform(0, 100, shape), 0.0)
    truth = TruthClasses(charge > 50, (charge > 0) & (charge <= 50), 5.0)
    tables = region_tables([pred, ref, truth.crmask, truth.excluded], ignore, rmap, ks,
                           strip_rows=strip)
    audit = audit_counts(ref, ignore, truth, rmap, ks)
    hit = charge > 0
    for name, region in _per_region(rmap, ks).items():
        t, valid = tables[name], region & ~ignore
        assert t.confusion(0, 1) == confusion(pred, ref, ignore, region), name
        assert t.confusion(0, 2, leave_out=3) == confusion(pred, truth.crmask,
                                                           ignore | truth.excluded, region)
        assert t.count(3) == np.count_nonzero(truth.excluded & ~ignore & region)
        assert audit[name] == AuditCounts(
            confusion(ref, hit, ignore, region),
            confusion(ref, truth.crmask, ignore | truth.excluded, region),
            int(np.count_nonzero(hit & valid)), int(np.count_nonzero(valid)))


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 40), min_size=1, max_size=5,
                                             unique=True), st.sampled_from([1, 5, 17, 64, 1024]))
def test_region_tables_on_region_maps_of_noisy_images(seed, ks, strip):
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 5, (70, 53))
    img[20:35, 10:30] += rng.uniform(0, 400, (15, 20))
    ignore = rng.random(img.shape) < 0.05
    rmap = region_map(img, ignore, ks)
    pred, truth = rng.random(img.shape) < 0.2, rng.random(img.shape) < 0.2
    tables = region_tables([pred, truth], ignore, rmap, ks, strip_rows=strip)
    for name, region in _per_region(rmap, ks).items():
        assert tables[name].confusion(0, 1) == confusion(pred, truth, ignore, region)


def test_region_tables_whole_image_and_bad_shapes():
    pred, truth = np.eye(4, dtype=bool), np.ones((4, 4), bool)
    assert list(region_tables([pred, truth], None)) == ["full"]
    assert region_tables([pred, truth], None)["full"].confusion(0, 1) == Counts(4, 0, 12)
    assert region_tables([pred.astype(int), truth], None)["full"].confusion(0, 1) == \
        Counts(4, 0, 12)
    with pytest.raises(ValueError, match="shape"):
        region_tables([pred, np.ones((4, 5), bool)], None)
    with pytest.raises(ValueError, match="region map"):
        region_tables([pred], None, None, (3,))


@pytest.mark.parametrize("n_masks", [9, 14])  # codes past uint8 (9 masks), past uint16 (14)
def test_region_tables_with_many_masks(n_masks):
    rng = np.random.default_rng(n_masks)
    ks = (2, 4, 8)
    ms = [rng.random((9, 11)) < 0.5 for _ in range(n_masks)]
    ignore = rng.random((9, 11)) < 0.1
    rmap = rng.choice(np.array([0, *ks]), size=(9, 11)).astype(np.int16)
    tables = region_tables(ms, ignore, rmap, ks, strip_rows=4)
    for name, region in _per_region(rmap, ks).items():
        for i, j, o in [(0, 1, 2), (n_masks - 1, 3, n_masks - 2), (5, n_masks - 1, 0)]:
            assert tables[name].confusion(i, j, leave_out=o) == confusion(
                ms[i], ms[j], ignore | ms[o], region)
