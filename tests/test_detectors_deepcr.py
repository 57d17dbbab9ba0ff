"""deepCR adapter with the real bundled models: scores on a synthetic scene, pinned
versions (weights + architecture + scale), tiling, inpainting, devices."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import replace

import numpy as np
import pytest

from detector_scene import make_scene, scene_with_exposure, scores

pytest.importorskip("deepCR")
torch = pytest.importorskip("torch")

from pytest_crbench.detectors.deepcr import (  # noqa: E402
    INPAINT_MODELS,
    MASK_MODELS,
    DeepCRDetector,
)
from pytest_crbench.detectors.base import Detector, Prediction, as_prediction  # noqa: E402
from pytest_crbench.detectors.specs import detector_id, load_detector  # noqa: E402
from pytest_crbench.errors import CRBenchDetectorError  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    return scene_with_exposure()


def _sha12(kind, name):
    root = list(importlib.util.find_spec("learned_models").submodule_search_locations)[0]
    with open(os.path.join(root, kind, name + ".pth"), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]


# --------------------------------------------------------------------------- deepCR

#: (threshold, recall floor, precision floor) per mask model, on the 256² scene
#: (measured: recall 1.0 for all at their threshold except WFC3-UVIS 0.86; precision
#: ACS-WFC 0.96, F435W 1.0, F606W 0.93, F814W 0.43, 2-4 0.66, decam 0.44,
#: example_model 0.72, WFC3-UVIS 0.56).  WFC3-UVIS (another instrument, and deepCR
#: normalises its input by mean/std) peaks at probabilities 0.3-0.6: threshold 0.2.
FLOORS = {
    "ACS-WFC": (0.5, 0.9, 0.8),
    "ACS-WFC-F435W": (0.5, 0.9, 0.8),
    "ACS-WFC-F606W": (0.5, 0.9, 0.75),
    "ACS-WFC-F814W": (0.5, 0.9, 0.3),
    "ACS-WFC-F606W-2-4": (0.5, 0.9, 0.5),
    "decam": (0.5, 0.9, 0.3),
    "example_model": (0.5, 0.9, 0.5),
    "WFC3-UVIS": (0.2, 0.7, 0.4),
}


def test_every_mask_model_has_floors():
    assert set(FLOORS) == set(MASK_MODELS)


@pytest.mark.parametrize("model", list(MASK_MODELS))
def test_mask_model_finds_injected_crs(model, scene):
    img, _, truth, exp = scene
    thr, rfloor, pfloor = FLOORS[model]
    det = DeepCRDetector(model, threshold=thr)
    assert isinstance(det, Detector)
    pred = det.detect(img, np.zeros(img.shape, bool), exp)
    assert isinstance(pred, Prediction)
    assert pred.mask.dtype == bool and pred.mask.shape == img.shape
    assert pred.probability.dtype == np.float32
    assert np.array_equal(pred.mask, pred.probability > thr)
    assert pred.cleaned is None
    recall, precision = scores(pred.mask, truth)
    assert recall >= rfloor, f"{model}: recall {recall:.3f}"
    assert precision >= pfloor, f"{model}: precision {precision:.3f}"
    as_prediction(pred, threshold=det.threshold, shape=img.shape, detector=det.name)


def test_wrong_scale_breaks_the_2_4_model(scene):
    """ACS-WFC-F606W-2-4 was trained on electrons/100: at scale 1 it flags the sky."""
    img, _, truth, _ = scene
    det = DeepCRDetector("ACS-WFC-F606W-2-4")
    assert det.mask_spec.scale == 100 and "scale=100" in det.version
    r_ok, p_ok = scores(det.detect(img).mask, truth)
    wrong = DeepCRDetector("ACS-WFC-F606W-2-4")
    wrong.mask_spec = replace(wrong.mask_spec, scale=1)
    r_bad, p_bad = scores(wrong.detect(img).mask, truth)
    assert r_ok >= 0.9 and p_ok >= 0.5
    assert p_bad < 0.1 and p_bad < p_ok / 5, (r_bad, p_bad)


def test_wrong_scale_breaks_acs_wfc(scene):
    img, _, truth, _ = scene
    wrong = DeepCRDetector("ACS-WFC")
    wrong.mask_spec = replace(wrong.mask_spec, scale=100)
    r_bad, _ = scores(wrong.detect(img).mask, truth)
    assert r_bad < 0.5


def test_versions_pin_weights_architecture_and_scale():
    versions = {}
    for name, spec in MASK_MODELS.items():
        v = DeepCRDetector(name).version
        assert f"sha256:{_sha12('mask', name)}" in v
        assert v.startswith(f"{name} {spec.arch}(") and f"scale={spec.scale:g}" in v
        versions[name] = v
    assert len(set(versions.values())) == len(MASK_MODELS)
    assert versions["ACS-WFC-F606W-2-4"] == (
        f"ACS-WFC-F606W-2-4 UNet2SigmoidBatchNorm(1,1,4) scale=100 sha256:{_sha12('mask', 'ACS-WFC-F606W-2-4')}")
    with_inpaint = DeepCRDetector("ACS-WFC", inpaint="ACS-WFC-F606W-3-32").version
    assert with_inpaint.startswith(versions["ACS-WFC"])
    assert f"UNet3BatchNorm(2,1,32) scale=100 sha256:{_sha12('inpaint', 'ACS-WFC-F606W-3-32')}" in with_inpaint


def test_unregistered_models_are_registered_in_deepcr_at_run_time():
    DeepCRDetector("ACS-WFC-F606W-2-4")
    import learned_models

    for name, spec in MASK_MODELS.items():
        cls, channels, scale = learned_models.mask_dict[name]
        assert (cls.__name__, tuple(channels), scale) == (spec.arch, spec.channels, spec.scale)
    for name, spec in INPAINT_MODELS.items():
        assert learned_models.inpaint_dict[name][0].__name__ == spec.arch


def test_deterministic(scene):
    img, *_ = scene
    a = DeepCRDetector("ACS-WFC").detect(img)
    b = DeepCRDetector("ACS-WFC")
    b1, b2 = b.detect(img), b.detect(img)
    assert np.array_equal(a.probability, b1.probability)
    assert np.array_equal(b1.probability, b2.probability)
    assert np.array_equal(b1.mask, b2.mask)


def test_tiles_equal_whole_image_and_stock_clean():
    """Halo tiles aligned on the pooling grid give the whole-image result (up to float
    rounding: oneDNN's kernels depend on the tile shape), which is what stock
    deepCR.clean computes when the image fits in one patch.  Stock clean with small
    patches does not: its tiles have no overlap."""
    img, *_ = make_scene(n=190, seed=4, ncr=20, stars=4)  # not a multiple of 4: padding
    tiled = DeepCRDetector("ACS-WFC", patch=64).detect(img)
    whole = DeepCRDetector("ACS-WFC", patch=1024).detect(img)
    stock = DeepCRDetector("ACS-WFC", engine="stock", patch=1024).detect(img)
    np.testing.assert_allclose(tiled.probability, whole.probability, atol=1e-5)
    np.testing.assert_allclose(stock.probability, whole.probability, atol=1e-5)
    assert (tiled.mask != whole.mask).sum() <= 2
    assert (stock.mask != whole.mask).sum() <= 2
    seams = DeepCRDetector("ACS-WFC", engine="stock", patch=64).detect(img)
    assert np.abs(seams.probability - whole.probability).max() > 1e-3


def test_no_gradients_are_kept(scene):
    img, *_ = scene
    det = DeepCRDetector("ACS-WFC", inpaint="ACS-WFC-F606W-2-32")
    assert not any(p.requires_grad for p in det.mask_net.parameters())
    assert not det.mask_net.training and not det.inpaint_net.training
    det.detect(img[:64, :64])


@pytest.mark.parametrize("inpaint", ["ACS-WFC-F606W-2-32", "ACS-WFC-F606W-3-32", "medmask"])
def test_inpaint_restores_the_sky(inpaint, scene):
    img, model, truth, exp = scene
    det = DeepCRDetector("ACS-WFC", inpaint=inpaint)
    assert det.name == f"deepcr:ACS-WFC+{inpaint}"
    pred = det.detect(img, np.zeros(img.shape, bool), exp)
    assert pred.cleaned is not None and pred.cleaned.dtype == np.float32
    assert pred.cleaned.shape == img.shape
    # untouched where nothing was flagged
    assert np.array_equal(pred.cleaned[~pred.mask], img[~pred.mask])
    hit = truth & pred.mask
    before = np.abs(img[hit] - model[hit])
    after = np.abs(pred.cleaned[hit] - model[hit])
    assert np.median(before) > 1000
    assert np.median(after) < 15, np.median(after)  # sky noise is ~10 e-
    assert np.percentile(after, 90) < 100


def test_unknown_models_name_the_valid_ones():
    with pytest.raises(CRBenchDetectorError) as err:
        DeepCRDetector("ACS-WFC-F999W")
    msg = str(err.value)
    assert "ACS-WFC-F999W" in msg and all(m in msg for m in MASK_MODELS)
    with pytest.raises(CRBenchDetectorError, match="ACS-WFC-F606W-3-32"):
        DeepCRDetector("ACS-WFC", inpaint="nope")


def test_bad_arguments():
    with pytest.raises(CRBenchDetectorError, match="threshold"):
        DeepCRDetector("ACS-WFC", threshold=1.5)
    with pytest.raises(CRBenchDetectorError, match="patch"):
        DeepCRDetector("ACS-WFC", patch=100 + 2)
    with pytest.raises(CRBenchDetectorError, match="device"):
        DeepCRDetector("ACS-WFC", device="tpu")


def test_device_auto_and_synchronize():
    det = DeepCRDetector("ACS-WFC", device="auto")
    assert det.device == ("cuda" if torch.cuda.is_available() else "cpu")
    det.synchronize()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(CRBenchDetectorError, match="CUDA") as err:
        DeepCRDetector("ACS-WFC", device="cuda")
    assert "'cuda'" in str(err.value) and "cpu" in str(err.value)
    with pytest.raises(CRBenchDetectorError, match="CUDA"):
        load_detector("deepcr:ACS-WFC", device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu(scene):
    img, _, truth, _ = scene
    gpu = DeepCRDetector("ACS-WFC", device="cuda", inpaint="ACS-WFC-F606W-2-32")
    assert gpu.device == "cuda"
    g = gpu.detect(img)
    gpu.synchronize()
    c = DeepCRDetector("ACS-WFC", device="cpu", inpaint="ACS-WFC-F606W-2-32").detect(img)
    np.testing.assert_allclose(g.probability, c.probability, atol=1e-4)
    assert (g.mask != c.mask).sum() <= 2
    assert np.array_equal(gpu.detect(img).probability, g.probability)
    assert scores(g.mask, truth)[0] >= 0.9


# ------------------------------------------------------------------------ resolution


def test_load_detector_deepcr_specs():
    det = load_detector("deepcr:ACS-WFC-F606W-2-4", threshold=0.4)
    assert isinstance(det, DeepCRDetector) and det.threshold == 0.4
    assert detector_id(det) == "deepcr:ACS-WFC-F606W-2-4"
    assert load_detector("deepcr:acs-wfc").model == "ACS-WFC"
    assert detector_id(load_detector("deepcr")) == "deepcr:ACS-WFC"
    both = load_detector("deepcr:ACS-WFC+ACS-WFC-F606W-2-32")
    assert both.inpaint_model == "ACS-WFC-F606W-2-32"
    assert detector_id(both) == "deepcr:ACS-WFC+ACS-WFC-F606W-2-32"
