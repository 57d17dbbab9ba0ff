"""Detector resolution (specs, import paths, entry points) and the Detector interface;
runs without deepCR or torch (deepCR's model names are known without importing it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from detector_scene import USERDET, scene_with_exposure, scores
from pytest_crbench.detectors.astroscrappy import AstroscrappyDetector
from pytest_crbench.detectors.base import as_prediction
from pytest_crbench.detectors.deepcr import MASK_MODELS
from pytest_crbench.detectors.specs import available_detectors, detector_id, load_detector
from pytest_crbench.errors import CRBenchDetectorError


@pytest.fixture(scope="module")
def scene():
    return scene_with_exposure()


def test_load_detector_astroscrappy_spec():
    a = load_detector("astroscrappy:sigclip=5")
    assert isinstance(a, AstroscrappyDetector) and a.params["sigclip"] == 5.0
    assert detector_id(a) == "astroscrappy:sigclip=5"


def test_available_detectors_lists_every_model():
    names = available_detectors()
    assert all(f"deepcr:{m}" in names for m in MASK_MODELS)
    assert "astroscrappy" in names


def test_unknown_deepcr_model_lists_valid_ones():
    with pytest.raises(CRBenchDetectorError) as err:
        load_detector("deepcr:HST-NOPE")
    assert "HST-NOPE" in str(err.value)
    assert all(m in str(err.value) for m in MASK_MODELS)


def test_unknown_spec_lists_accepted_forms():
    with pytest.raises(CRBenchDetectorError) as err:
        load_detector("no such thing")
    msg = str(err.value)
    assert "deepcr:<mask model>" in msg and "package.module:factory" in msg
    assert "pytest_crbench.detectors" in msg


def test_bad_import_path_names_module_and_error():
    with pytest.raises(CRBenchDetectorError) as err:
        load_detector("no_such_pkg_xyz.sub:factory")
    assert "no_such_pkg_xyz.sub" in str(err.value) and "ModuleNotFoundError" in str(err.value)
    with pytest.raises(CRBenchDetectorError, match="no attribute 'missing'"):
        load_detector("pytest_crbench.detectors.deepcr:missing")


def test_user_detector_by_import_path(monkeypatch, scene):
    img, _, truth, exp = scene
    monkeypatch.syspath_prepend(str(USERDET))
    det = load_detector("mydetector:make", threshold=0.3, device="cpu")
    assert det.threshold == 0.3 and det.device == "cpu"
    assert detector_id(det) == "mydetector:make"
    pred = as_prediction(det.detect(img, np.zeros(img.shape, bool), exp),
                         threshold=det.threshold, shape=img.shape, detector=detector_id(det))
    assert scores(pred.mask, truth)[0] >= 0.8
    plain = load_detector("mydetector:make_plain", threshold=0.7)
    assert plain.threshold == 0.7  # set on the object: the factory takes no threshold


def test_factory_returning_a_non_detector(monkeypatch):
    monkeypatch.syspath_prepend(str(USERDET))
    with pytest.raises(CRBenchDetectorError) as err:
        load_detector("mydetector:make_broken")
    msg = str(err.value)
    assert "threshold" in msg and "detect" in msg and "mydetector:make_broken" in msg
    assert "name" not in msg.split("missing", 1)[1].split("(")[0]
    with pytest.raises(CRBenchDetectorError, match="RuntimeError: weights not found"):
        load_detector("mydetector:make_failing")


def test_entry_point_discovery(tmp_path, monkeypatch):
    dist = tmp_path / "crbench_fake_detector-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crbench-fake-detector\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest_crbench.detectors]\nmydet = mydetector:make_from_spec\n"
        "brokendet = mydetector_does_not_exist:make\n")
    monkeypatch.syspath_prepend(str(USERDET))
    monkeypatch.syspath_prepend(str(tmp_path))
    names = available_detectors()
    assert "mydet" in names and "brokendet" in names
    det = load_detector("mydet:nsigma=6", threshold=0.25)
    assert det.nsigma == 6.0 and det.threshold == 0.25
    assert detector_id(det) == "mydet:nsigma=6"
    assert load_detector("mydet").nsigma == 8.0
    with pytest.raises(CRBenchDetectorError, match="entry point 'brokendet'"):
        load_detector("brokendet")


def test_registry_import_does_not_import_torch():
    code = textwrap.dedent("""
        import sys
        import pytest_crbench.detectors.specs as r
        import pytest_crbench.detectors.deepcr, pytest_crbench.detectors.astroscrappy
        names = r.available_detectors()
        assert "deepcr:ACS-WFC" in names, names
        bad = [m for m in ("torch", "deepCR", "learned_models") if m in sys.modules]
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_one_threshold_rule_probability_must_exceed_it():
    """A probability equal to the threshold is not a cosmic ray (deepCR's strict rule),
    for user detectors returning probabilities as for deepCR."""
    from pytest_crbench.detectors.base import threshold_mask

    prob = np.array([[0.2, 0.5], [0.50001, 1.0]], dtype=np.float32)
    expected = np.array([[False, False], [True, True]])
    assert np.array_equal(threshold_mask(prob, 0.5), expected)
    pred = as_prediction(prob, threshold=0.5, shape=prob.shape, detector="user")
    assert np.array_equal(pred.mask, expected)
