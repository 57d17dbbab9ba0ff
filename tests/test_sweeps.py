"""Threshold sweeps (science/sweeps.py): exact bookkeeping and the curves' properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from pytest_crbench.science.regions import region_map, region_names
from pytest_crbench.science.sweeps import (FIXED_FPRS, THRESHOLDS, ThresholdSweep,
                                           at_baseline_fpr, operating_fpr)

probs = arrays(np.float32, st.integers(1, 400),
               elements=st.floats(0, 1, width=32, allow_nan=False))


def _sweep(p_pos, p_neg, ks=()):
    p = np.concatenate([p_pos, p_neg])[None]
    truth = np.zeros(p.shape, bool)
    truth[0, :len(p_pos)] = True
    sw = ThresholdSweep(ks)
    sw.add(p, truth, None, np.zeros(p.shape, np.int16))
    return sw


def test_grid_is_fixed_sorted_and_holds_the_usual_thresholds():
    assert THRESHOLDS[0] == 0.0 and THRESHOLDS[-1] == 1.0
    assert np.all(np.diff(THRESHOLDS) > 0)
    for t in (0.001, 0.1, 0.5, 0.8, 0.999):
        assert np.any(np.isclose(THRESHOLDS, t, rtol=0, atol=1e-12))


@settings(max_examples=60, deadline=None)
@given(probs, probs)
def test_curves_are_monotone_and_bounded(p_pos, p_neg):
    c = _sweep(p_pos, p_neg).curve("full")
    assert c.positives == len(p_pos) and c.negatives == len(p_neg)
    assert np.all(np.diff(c.tp) <= 0) and np.all(np.diff(c.fp) <= 0)
    x, y = c.roc()
    assert x[0] == 0 and y[0] == 0 and x[-1] == 1 and y[-1] == 1
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
    assert 0.0 <= c.auc() <= 1.0
    assert 0.0 <= c.average_precision() <= 1.0


@settings(max_examples=60, deadline=None)
@given(probs, probs)
def test_auc_is_the_mann_whitney_statistic_of_the_binned_probabilities(p_pos, p_neg):
    """The trapezoidal AUC equals P(bin of a positive > bin of a negative) + ½ P(equal)."""
    c = _sweep(p_pos, p_neg).curve("full")
    bin_of = lambda p: np.clip(np.searchsorted(THRESHOLDS, p.astype(np.float64), "right") - 1,
                               0, len(THRESHOLDS) - 1)
    bp, bn = bin_of(p_pos)[:, None], bin_of(p_neg)[None, :]
    expected = (np.sum(bp > bn) + 0.5 * np.sum(bp == bn)) / (len(p_pos) * len(p_neg))
    assert c.auc() == pytest.approx(expected, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.floats(0.51, 1.0), st.floats(0.0, 0.49))
def test_a_perfect_separator_has_auc_1_and_full_tpr_at_every_fpr(n_pos, n_neg, hi, lo):
    c = _sweep(np.full(n_pos, hi, np.float32), np.full(n_neg, lo, np.float32)).curve("full")
    assert c.auc() == 1.0 and c.average_precision() == 1.0
    for f in FIXED_FPRS + (0.0, 1.0):
        assert c.at_fpr(f).tpr == 1.0


def test_a_constant_score_ranks_at_random():
    c = _sweep(np.full(50, 0.3, np.float32), np.full(70, 0.3, np.float32)).curve("full")
    assert c.auc() == pytest.approx(0.5)
    assert c.at_fpr(0.2).tpr == pytest.approx(0.2)  # on the diagonal segment


def test_tpr_at_fpr_interpolates_the_counts_between_bracketing_thresholds():
    # negatives: 100 at 0.2, 100 at 0.6; positives: 100 at 0.6, 100 at 0.9 (N = P = 200)
    pos = np.r_[np.full(100, 0.6), np.full(100, 0.9)].astype(np.float32)
    neg = np.r_[np.full(100, 0.2), np.full(100, 0.6)].astype(np.float32)
    c = _sweep(pos, neg).curve("full")
    # threshold above 0.6: FPR 0, TPR 0.5; at 0.6: FPR 0.5, TPR 1 → FPR 0.25 halfway
    pt = c.at_fpr(0.25)
    assert pt.tpr == pytest.approx(0.75)
    assert pt.precision == pytest.approx(150 / (150 + 50))
    lo, hi = pt.thresholds
    assert lo <= 0.6 < hi
    assert c.at_threshold(0.5).fpr == 0.5 and c.at_threshold(0.5).tpr == 1.0


def test_regions_are_nested_and_match_direct_counting():
    rng = np.random.default_rng(3)
    clean = rng.normal(100, 3, (80, 90))
    clean[20:30, 20:30] += 400
    clean[24:27, 24:27] += 4000
    rmap = region_map(clean, None, (3, 20, 160))
    truth = rng.random(clean.shape) < 0.1
    prob = np.where(truth, rng.beta(4, 1, truth.shape), rng.beta(1, 4, truth.shape))
    ignore = rng.random(clean.shape) < 0.05
    sw = ThresholdSweep((3, 20, 160))
    sw.add(prob, truth, ignore, rmap)
    sw = sw + sw  # histograms add
    regions = [np.ones(rmap.shape, bool)] + [rmap >= k for k in (3, 20, 160)]
    for name, region in zip(region_names((3, 20, 160)), regions):
        c = sw.curve(name)
        valid = region & ~ignore
        for i in (0, 500, 900, len(THRESHOLDS) - 1):
            flagged = prob >= THRESHOLDS[i]
            assert c.tp[i] == 2 * np.sum(flagged & truth & valid)
            assert c.fp[i] == 2 * np.sum(flagged & ~truth & valid)


def test_record_round_trip_and_baseline_operating_point():
    rng = np.random.default_rng(0)
    truth = rng.random((60, 60)) < 0.08
    base = ThresholdSweep((3,))
    cand = ThresholdSweep((3,))
    rmap = np.zeros(truth.shape, np.int16)
    base.add(np.where(truth, rng.beta(3, 1, truth.shape), rng.beta(1, 3, truth.shape)), truth,
             None, rmap)
    cand.add(np.where(truth, rng.beta(6, 1, truth.shape), rng.beta(1, 6, truth.shape)), truth,
             None, rmap)
    back = ThresholdSweep.from_record(base.to_record())
    for r in base.regions:
        assert np.array_equal(back.positives[r], base.positives[r])
        assert np.array_equal(back.negatives[r], base.negatives[r])
    fpr = operating_fpr(base, 0.5)
    assert at_baseline_fpr(base, base, 0.5).tpr == pytest.approx(
        base.curve().at_threshold(0.5).tpr)
    better = at_baseline_fpr(cand, base, 0.5)
    assert better.fpr == pytest.approx(fpr) and better.tpr > base.curve().at_threshold(0.5).tpr
    assert at_baseline_fpr(cand, fpr).tpr == better.tpr  # a binary baseline's FPR works too
    empty = ThresholdSweep((3,))
    assert empty.curve("k3").auc() is None
    assert "no reference cosmic-ray pixels" in empty.summary("k3")["undefined"]


def test_report_section_and_terminal_lines(tmp_path):
    from pytest_crbench.reporting.html import write_report
    from pytest_crbench.reporting.sweep_figures import sweep_lines

    rng = np.random.default_rng(5)
    truth = rng.random((80, 80)) < 0.05
    rmap = np.zeros(truth.shape, np.int16)
    rmap[20:50, 20:50] = 3
    sw = ThresholdSweep((3,))
    sw.add(np.where(truth, rng.beta(5, 1, truth.shape), rng.beta(1, 5, truth.shape)), truth,
           None, rmap)
    rec = {"detector": "deepcr:ACS-WFC", "dataset": "sim", "threshold": 0.5, **sw.to_record()}
    html_path, md_path = write_report(tmp_path, {"sweeps": [rec]})
    page = html_path.read_text()
    assert "Threshold sweeps (ROC and precision–recall)" in page
    assert f"{sw.summary('full')['auc']:.4f}" in page
    assert (tmp_path / "figures" / "sweep_roc_00.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "sweep_pr_00.png").stat().st_size > 10_000
    assert "sweep_roc_00.png" in md_path.read_text()
    [line] = sweep_lines({"deepcr:ACS-WFC": sw}, "sim")
    assert line.startswith("  sweep deepcr:ACS-WFC on sim (full): AUC 0.")
    assert "at FPR 0.05 %: TPR" in line and "at FPR 0.5 %: TPR" in line
    empty_page, _ = write_report(tmp_path / "none", {})
    assert "no threshold sweep" in empty_page.read_text()


def test_evaluate_accumulates_the_sweep_and_it_travels_through_records(small_group):
    """One pass: the sweep's counts at the detector's threshold are its pixel counts."""
    import json

    from pytest_crbench.bench.evaluation import Evaluation, evaluate, prepare
    from pytest_crbench.detectors.base import Prediction
    from pytest_crbench.science.exposures import Dataset

    class Smooth:  # a probability detector: a squashed excess over the local median
        name, version, threshold = "smooth", "1", 0.5

        def detect(self, image, ignore, exposure):
            from scipy import ndimage

            excess = image - ndimage.median_filter(image, 5)
            prob = (1 / (1 + np.exp(-(excess - 200) / 50))).astype(np.float32)
            return Prediction(mask=prob >= self.threshold, probability=prob)

    prepared = prepare(Dataset(name="t", groups=[small_group]), [3, 20])
    ev = evaluate(Smooth(), prepared)
    assert ev.threshold == 0.5 and ev.sweep is not None
    for region in ev.regions:
        c = ev.sweep.curve(region)
        i = int(np.searchsorted(THRESHOLDS, 0.5))
        pooled = ev.pooled(region)
        assert (c.tp[i], c.fp[i], c.positives - c.tp[i]) == (pooled.tp, pooled.fp, pooled.fn)
    back = Evaluation.from_record(json.loads(json.dumps(ev.to_record())))
    assert back.threshold == 0.5
    for r in ev.regions:
        assert np.array_equal(back.sweep.positives[r], ev.sweep.positives[r])
    from pytest_crbench.detectors.specs import load_detector

    assert evaluate(load_detector("rhoads"), prepared).sweep is None  # binary detector
