"""The peer detectors: Cosmic-CoNN (real wheel model) and the classical methods of
Rhoads (2000) and Pych (2004) on synthetic scenes whose cosmic rays are known."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import ndimage

from conftest import make_group
from pytest_crbench.detectors.specs import check_spec, load_detector
from pytest_crbench.errors import CRBenchDetectorError

STARS = ((30.0, 40.0, 2e4), (60.3, 70.7, 8e4), (70.0, 20.0, 5e3), (100.4, 100.6, 3e4),
         (20.2, 110.0, 1.2e4), (110.0, 30.0, 5e4))


def scene_exposure(seed):
    """A 128² exposure: 6 Gaussian FWHM-2 px stars, 40 two-pixel hits (CRTRUTH)."""
    exp = make_group(1, shape=(128, 128), seed=seed, n_cr=40, stars=STARS).exposures[0]
    truth = exp.crtruth > 0
    sky_sigma = np.sqrt(100 + exp.read_noise ** 2)
    yy, xx = np.mgrid[:128, :128]
    s = 2.0 / 2.3548
    stars = []
    for y, x, f in STARS:
        light = f / (2 * np.pi * s * s) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
        stars.append((light > 3 * sky_sigma) & ~ndimage.binary_dilation(truth, iterations=1))
    return exp, truth, stars


@pytest.mark.parametrize("spec, min_recall, min_precision, max_star_fraction", [
    # the scene's stars are Gaussians sampled at pixel centres, sharper than the
    # pixel-integrated FWHM-2 px PSF rhoads assumes by default: Rhoads' filter must be
    # built for the sharpest PSF of the data (its fwhm parameter)
    ("rhoads:fwhm=1.8", 0.9, 0.8, 0.1),
    ("pych", 0.6, 0.7, 0.25),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_classical_detectors_find_known_hits_and_leave_stars(spec, min_recall, min_precision,
                                                             max_star_fraction, seed):
    exp, truth, stars = scene_exposure(seed)
    det = load_detector(spec)
    assert det.threshold is None and det.version.startswith(spec.split(":")[0])
    mask = det.detect(exp.sci, np.zeros(exp.shape, bool), exp).mask
    # a hit's faint second pixel (100-600 e-) may stay: score on the bright pixels
    bright = exp.crtruth > 700
    recall = np.sum(mask & bright) / bright.sum()
    precision = np.sum(mask & truth) / max(mask.sum(), 1)
    assert recall >= min_recall, (spec, recall)
    assert precision >= min_precision, (spec, precision)
    for star in stars:  # no star is flagged wholesale
        assert np.sum(mask & star) / star.sum() <= max_star_fraction, spec
    again = det.detect(exp.sci, np.zeros(exp.shape, bool), exp).mask
    assert np.array_equal(mask, again)  # deterministic


def test_classical_detectors_never_flag_ignored_pixels_and_check_options():
    exp, truth, _ = scene_exposure(0)
    ignore = np.zeros(exp.shape, bool)
    ignore[:, :64] = True
    for spec in ("rhoads:sigma=4,grow=2", "pych:box=16,gap=6"):
        mask = load_detector(spec).detect(exp.sci, ignore, exp).mask
        assert not (mask & ignore).any() and (mask & truth).any()
    for bad, match in (("rhoads:fwhm=abc", "fwhm must be a float"),
                       ("pych:box=7", "even box"), ("rhoads:width=3", "valid keys")):
        with pytest.raises(CRBenchDetectorError, match=match):
            check_spec(bad)


def test_rhoads_lambda_keeps_point_sources_non_positive():
    from pytest_crbench.detectors.rhoads import _psf, filter_kernel

    p, lam = filter_kernel(2.0, 3)
    assert 0.3 < lam < 0.7
    star = np.pad(_psf(2.0, 3, 0.3, -0.2), 6) * 1e5
    d = lam * star - ndimage.correlate(star, p, mode="constant")
    assert d[star >= 0.05 * star.max()].max() <= 1e-6


cosmicconn = pytest.importorskip("cosmic_conn")


def test_cosmicconn_reproduces_the_wheel_and_thresholds_probabilities():
    from cosmic_conn import init_model

    exp = make_group(1, shape=(200, 140), seed=3, n_cr=30).exposures[0]
    det = load_detector("cosmicconn", threshold=0.4)
    assert det.threshold == 0.4 and "HST_ACS_WFC" in det.version and "sha256:" in det.version
    pred = det.detect(exp.sci, None, exp)
    assert pred.probability.dtype == np.float32
    assert np.array_equal(pred.mask, pred.probability >= 0.4)
    wheel = init_model("HST_ACS_WFC").detect_cr(exp.sci.copy(), ret_numpy=True)
    assert np.array_equal(pred.probability, wheel)  # edge rows (200 % 16) are 0 in both
    truth = exp.crtruth > 700
    assert np.sum(pred.mask & truth) / truth.sum() > 0.8
    tiled = load_detector("cosmicconn:HST_ACS_WFC,patch=64").detect(exp.sci).probability
    assert tiled.shape == exp.shape and np.sum((tiled >= 0.5) & truth) / truth.sum() > 0.8


def test_cosmicconn_contains_its_side_effects_and_never_uses_the_network():
    code = textwrap.dedent("""
        import logging, socket
        import torch
        def refuse(*a, **k):
            raise AssertionError("network access")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        before = (torch.backends.cudnn.benchmark, list(logging.getLogger().handlers),
                  torch.get_default_dtype())
        from pytest_crbench.detectors.specs import load_detector
        import numpy as np
        det = load_detector("cosmicconn")
        det.detect(np.random.default_rng(0).normal(100, 5, (64, 64)).astype("f4"))
        after = (torch.backends.cudnn.benchmark, list(logging.getLogger().handlers),
                 torch.get_default_dtype())
        assert before == after, (before, after)
        print("contained")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "contained" in out.stdout


def test_cosmicconn_spec_errors_name_the_problem():
    with pytest.raises(CRBenchDetectorError, match="the wheel ships HST_ACS_WFC"):
        check_spec("cosmicconn:HST")
    with pytest.raises(CRBenchDetectorError, match="multiple of 16"):
        load_detector("cosmicconn:HST_ACS_WFC,patch=100")
