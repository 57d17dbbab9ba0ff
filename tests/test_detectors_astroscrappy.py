"""astroscrappy adapter (runs without deepCR or torch)."""

from __future__ import annotations

import numpy as np
import pytest

from detector_scene import scene_with_exposure, scores
from pytest_crbench.detectors.astroscrappy import AstroscrappyDetector, make_detector
from pytest_crbench.detectors.base import Detector
from pytest_crbench.detectors.specs import ENTRY_POINT_GROUP
from pytest_crbench.errors import CRBenchDetectorError


@pytest.fixture(scope="module")
def scene():
    return scene_with_exposure()


def test_astroscrappy_finds_crs(scene):
    img, model, truth, exp = scene
    det = make_detector()
    assert isinstance(det, Detector) and det.threshold is None
    pred = det.detect(img, np.zeros(img.shape, bool), exp)
    recall, precision = scores(pred.mask, truth)
    assert recall >= 0.8 and precision >= 0.5, (recall, precision)
    hit = truth & pred.mask
    assert np.median(np.abs(pred.cleaned[hit] - model[hit])) < 30


def test_astroscrappy_respects_inmask(scene):
    img, _, truth, exp = scene
    ignore = np.zeros(img.shape, bool)
    ignore[:, : img.shape[1] // 2] = True
    pred = make_detector().detect(img, ignore, exp)
    assert not (pred.mask & ignore).any()
    assert (pred.mask & truth & ~ignore).sum() >= 0.8 * (truth & ~ignore).sum()


def test_astroscrappy_version_and_parameters():
    import astroscrappy

    det = make_detector()
    for part in (astroscrappy.__version__, "sigclip=4.5", "sigfrac=0.3", "objlim=5.0", "niter=4",
                 "sepmed=True", "cleantype=meanmask", "fsmode=median", "gain=1"):
        assert part in det.version
    tuned = make_detector("astroscrappy:sigclip=6,sepmed=false", objlim=4)
    assert tuned.params["sigclip"] == 6.0 and tuned.params["sepmed"] is False
    assert tuned.params["objlim"] == 4.0
    assert tuned.version != det.version and "sigclip=6.0" in tuned.version
    with pytest.raises(CRBenchDetectorError, match="unknown parameter"):
        AstroscrappyDetector(sigma=3)
    with pytest.raises(CRBenchDetectorError, match="cleantype"):
        make_detector("cleantype=best")


def test_astroscrappy_entry_point_is_declared():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if "astroscrappy" not in eps:
        pytest.skip("package metadata predates the entry point (reinstall pytest-crbench)")
    factory = eps["astroscrappy"].load()
    assert factory is make_detector
    assert isinstance(factory(""), AstroscrappyDetector)
