"""The hierarchical bootstrap (science/bootstrap.py): properties of the maths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pytest_crbench.science.bootstrap import (BootstrapConfig, Interval, Resampler, mcnemar,
                                              metric_terms, one_sided_bounds, verdict)
from pytest_crbench.science.metrics import Counts, scores

CFG = BootstrapConfig(replicates=400, seed=3)


def group_labels(sizes):
    return [f"g{i}" for i, n in enumerate(sizes) for _ in range(n)]


sizes = st.lists(st.integers(1, 5), min_size=2, max_size=6)


@given(sizes=sizes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_weights_preserve_the_structure(sizes, seed):
    """Every replicate draws G groups, and n_g exposures per draw of group g."""
    rs = Resampler(group_labels(sizes), BootstrapConfig(replicates=50, seed=seed))
    G = len(sizes)
    assert rs.group_weights.shape == (50, G)
    assert np.all(rs.group_weights.sum(axis=1) == G)
    start = 0
    for g, n in enumerate(sizes):
        block = rs.exposure_weights[:, start:start + n]
        assert np.array_equal(block.sum(axis=1), rs.group_weights[:, g] * n)
        start += n
    assert np.all(rs.exposure_weights >= 0)


@given(sizes=sizes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_deterministic_under_seed(sizes, seed):
    a = Resampler(group_labels(sizes), BootstrapConfig(replicates=30, seed=seed))
    b = Resampler(group_labels(sizes), BootstrapConfig(replicates=30, seed=seed))
    assert np.array_equal(a.exposure_weights, b.exposure_weights)
    c = Resampler(group_labels(sizes), BootstrapConfig(replicates=30, seed=seed + 1))
    assert not np.array_equal(a.exposure_weights, c.exposure_weights) or sum(sizes) == 2


def counts_strategy(n):
    """Non-degenerate per-exposure counts: every exposure has many positives."""
    return st.lists(st.tuples(st.integers(200, 400), st.integers(10, 60),
                              st.integers(10, 60)), min_size=n, max_size=n)


@st.composite
def dataset(draw):
    s = draw(st.lists(st.integers(2, 4), min_size=3, max_size=6))
    return s, np.array(draw(counts_strategy(sum(s))), dtype=float)


@given(data=dataset())
@settings(max_examples=40, deadline=None)
def test_interval_contains_point_estimate(data):
    s, c = data
    rs = Resampler(group_labels(s), CFG)
    for metric in ("precision", "recall", "f1", "f2"):
        iv = rs.ratio(*metric_terms(metric, *c.T))
        assert iv.defined
        assert iv.low <= iv.value <= iv.high
        assert 0 <= iv.low <= iv.high <= 1


@given(data=dataset())
@settings(max_examples=30, deadline=None)
def test_point_estimate_is_the_pooled_score(data):
    s, c = data
    rs = Resampler(group_labels(s), CFG)
    pooled = Counts(*map(int, c.sum(axis=0)))
    for metric, score in scores(pooled).items():
        assert rs.ratio(*metric_terms(metric, *c.T)).value == pytest.approx(score.value)


@given(data=dataset())
@settings(max_examples=30, deadline=None)
def test_identical_inputs_give_zero_width_paired_difference(data):
    s, c = data
    rs = Resampler(group_labels(s), CFG)
    terms = metric_terms("recall", *c.T)
    d = rs.ratio_difference(terms, terms)
    assert (d.value, d.low, d.high) == (0.0, 0.0, 0.0)
    assert verdict(d) == "no significant difference"
    g = rs.group_mean_difference(np.arange(len(s), dtype=float), np.arange(len(s), dtype=float))
    assert (g.value, g.low, g.high) == (0.0, 0.0, 0.0)


@given(data=dataset(), shift=st.integers(30, 80))
@settings(max_examples=30, deadline=None)
def test_uniformly_better_candidate_is_better(data, shift):
    """A candidate that finds `shift` more CR pixels in every exposure is better on recall."""
    s, c = data
    rs = Resampler(group_labels(s), CFG)
    better = c.copy()
    better[:, 0] += shift
    better[:, 2] = np.maximum(better[:, 2] - shift, 0)
    better[:, 0] -= np.maximum(shift - c[:, 2], 0)  # keep TP+FN per exposure unchanged
    d = rs.ratio_difference(metric_terms("recall", *better.T), metric_terms("recall", *c.T))
    assert d.low > 0
    assert verdict(d) == "better"
    assert verdict(d, higher_is_better=False) == "worse"


@given(data=dataset(), conf=st.sampled_from([0.8, 0.9, 0.99]))
@settings(max_examples=20, deadline=None)
def test_one_sided_bound_is_inside_the_two_sided_interval(data, conf):
    s, c = data
    rs = Resampler(group_labels(s), BootstrapConfig(replicates=400, seed=1, confidence=conf))
    num, den = metric_terms("precision", *c.T)
    two = rs.ratio(num, den)
    one = rs.lower_bound(num, den, conf)
    assert two.low <= one.low <= one.value <= one.high <= two.high


def test_too_few_positives_or_groups_is_undefined_with_a_reason():
    rs = Resampler(["a", "a", "b"], CFG)
    iv = rs.ratio([1, 2, 0], [3, 4, 1], min_count=10, what="reference CR pixels")
    assert iv.value == pytest.approx(3 / 8) and not iv.defined
    assert "only 8 reference CR pixels" in iv.reason
    assert rs.ratio([0, 0, 0], [0, 0, 0], what="flagged pixels").reason == "no flagged pixels"
    one = Resampler(["a", "a"], CFG).ratio([50, 60], [100, 100])
    assert one.value == pytest.approx(0.55) and "1 group(s)" in one.reason
    # a score undefined in many replicates (positives in one exposure only)
    rs = Resampler(["a", "b", "c", "d"], CFG)
    sparse = rs.ratio([5, 0, 0, 0], [20, 0, 0, 0])
    assert not sparse.defined and "replicates" in sparse.reason


def test_group_mean_and_undefined_groups():
    rs = Resampler(["a", "b", "c", "c", "d", "e"], CFG)
    iv = rs.group_mean([0.8, np.nan, 0.9, 0.8, 0.9])
    assert iv.value == pytest.approx(0.85) and iv.defined and iv.low >= 0.8 and iv.high <= 0.9
    # a group undefined in many replicates: no interval, and the reason says so
    assert not rs.group_mean([0.8, np.nan, np.nan, np.nan, np.nan]).defined


def test_mcnemar_exact():
    assert mcnemar(0, 0) == 1.0
    assert mcnemar(5, 5) == pytest.approx(1.0)
    # 0 vs 10 discordant pairs: two-sided exact p = 2 * 0.5**10
    assert mcnemar(0, 10) == pytest.approx(2 * 0.5 ** 10)


def test_interval_format_and_dict_round_trip():
    iv = Interval(0.909, 0.892, 0.924)
    assert f"{iv:pct}" == "90.9 [89.2, 92.4]"
    assert Interval.from_dict(iv.as_dict()) == iv
    assert f"{Interval(None, reason='x'):pct}" == "undef."
    assert one_sided_bounds(0.5, np.full(100, np.nan), 0.99).reason.startswith("score undefined")


def test_config_validation():
    with pytest.raises(ValueError, match="replicates"):
        BootstrapConfig(replicates=5)
    with pytest.raises(ValueError, match="confidence"):
        BootstrapConfig(confidence=1.0)
