"""deepCR weight files (``deepcr:PATH``) and spec options that contain commas."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pytest_crbench.bench.settings import resolve, split_specs
from pytest_crbench.errors import CRBenchDetectorError

torch = pytest.importorskip("torch")
pytest.importorskip("deepCR")

from pytest_crbench.bench.evaluation import evaluate, prepare  # noqa: E402
from pytest_crbench.detectors.deepcr import INPAINT_MODELS, MASK_MODELS, weights_path  # noqa: E402
from pytest_crbench.detectors.specs import check_spec, load_detector  # noqa: E402
from pytest_crbench.detectors.weightfiles import model_from_file  # noqa: E402


@pytest.mark.parametrize("text, expected", [
    ("astroscrappy:sigclip=4.5,objlim=5", ["astroscrappy:sigclip=4.5,objlim=5"]),
    ("deepcr:ACS-WFC,astroscrappy:sigclip=4.5,objlim=5,deepcr:/m/x.pth,scale=1",
     ["deepcr:ACS-WFC", "astroscrappy:sigclip=4.5,objlim=5", "deepcr:/m/x.pth,scale=1"]),
    ("deepcr:ACS-WFC\nastroscrappy:objlim=5, sigclip=4", ["deepcr:ACS-WFC", "astroscrappy:objlim=5,sigclip=4"]),
    ("sim, sim-tiny", ["sim", "sim-tiny"]),
    ("3,5,10", ["3", "5", "10"]),
])
def test_split_specs_keeps_options_whole(text, expected):
    assert split_specs(text) == expected


def test_options_with_commas_survive_flags_toml_lists_and_ini():
    spec = "astroscrappy:sigclip=4.5,objlim=5"
    from_flags = resolve({"model": [spec, "deepcr:ACS-WFC"]}, {}, {})
    from_toml = resolve({}, {"model": [spec, "rhoads:sigma=6,grow=3"]}, {})
    from_ini = resolve({}, {}, {"model": f"{spec}\ndeepcr:ACS-WFC"})
    assert from_flags.model == [spec, "deepcr:ACS-WFC"]
    assert from_toml.model == [spec, "rhoads:sigma=6,grow=3"]
    assert from_ini.model == [spec, "deepcr:ACS-WFC"]
    det = load_detector(from_toml.model[0])
    assert det.params["sigclip"] == 4.5 and det.params["objlim"] == 5.0


@pytest.fixture(scope="module")
def acs_copy(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "production.pth"
    shutil.copy(weights_path(MASK_MODELS["ACS-WFC"]), path)
    return path


def test_copy_of_a_shipped_file_scores_exactly_like_the_shipped_name(acs_copy, small_group):
    from pytest_crbench.science.exposures import Dataset

    prepared = prepare(Dataset(name="t", groups=[small_group]), [3, 20])
    named = evaluate(load_detector("deepcr:ACS-WFC"), prepared)
    byfile = load_detector(f"deepcr:{acs_copy}")
    assert byfile.mask_spec.arch == "UNet2SigmoidBatchNorm" and byfile.mask_spec.scale == 1
    assert "sha256:0075cef7a8b7" in byfile.version and "production.pth" in byfile.version
    fromfile = evaluate(byfile, prepared)
    for a, b in zip(named.exposures, fromfile.exposures):
        assert a.counts == b.counts
        assert np.array_equal(a.mask, b.mask)


def test_architecture_width_and_bare_state_dicts_are_inferred(tmp_path):
    state = torch.load(weights_path(MASK_MODELS["ACS-WFC-F606W-2-4"]), map_location="cpu",
                       weights_only=True)
    bare = tmp_path / "retrained.pth"
    torch.save({k.removeprefix("module."): v + 0 for k, v in state.items()}, bare)
    with pytest.raises(CRBenchDetectorError, match=r"retrained.pth.*scale.*not stored.*scale=1"):
        check_spec(f"deepcr:{bare}")
    spec = model_from_file(str(bare), "mask", scale=100)
    assert (spec.arch, spec.channels, spec.scale) == ("UNet2SigmoidBatchNorm", (1, 1, 4), 100)
    det = load_detector(f"deepcr:{bare},scale=100")
    shipped = load_detector("deepcr:ACS-WFC-F606W-2-4")
    img = np.random.default_rng(0).normal(100, 10, (96, 96)).astype(np.float32)
    img[40, 50] += 3000
    assert np.array_equal(det.detect(img).probability, shipped.detect(img).probability)
    inpaint = model_from_file(weights_path(INPAINT_MODELS["ACS-WFC-F606W-3-32"]), "inpaint")
    assert inpaint.arch == "UNet3BatchNorm" and inpaint.scale == 100


@pytest.mark.parametrize("content, match", [
    (b"not a pickle", "not a PyTorch state dict"),
    (None, "does not exist"),
])
def test_a_file_that_is_no_state_dict_gets_one_clear_error(tmp_path, content, match):
    path = tmp_path / "model.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CRBenchDetectorError, match=match) as info:
        check_spec(f"deepcr:{path},scale=1")
    assert str(path) in str(info.value)


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Conv2d(1, 8, 3).state_dict(), path)
    with pytest.raises(CRBenchDetectorError, match="not a deepCR U-Net state dict"):
        check_spec(f"deepcr:{path},scale=1")
    with pytest.raises(CRBenchDetectorError, match="copy of the inpaint model"):
        check_spec(f"deepcr:{weights_path(INPAINT_MODELS['ACS-WFC-F606W-2-32'])}")
    with pytest.raises(CRBenchDetectorError, match="weight files only"):
        check_spec("deepcr:ACS-WFC,scale=100")


def test_a_bad_weight_file_is_one_usage_error_at_startup(pytester, monkeypatch, crbench_data_dir):
    monkeypatch.setenv("CRBENCH_DATA_DIR", str(crbench_data_dir))
    bad = pytester.path / "finetuned.pth"
    bad.write_text("not weights")
    result = pytester.runpytest("--crbench", "-p", "no:xdist", "--crbench-dataset", "sim-tiny",
                                "--crbench-model", f"deepcr:{bad},scale=1",
                                "--crbench-model", "astroscrappy:sigclip=4.5,objlim=5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count(str(bad)) == 1 and "not a PyTorch state dict" in err
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


def test_mask_and_inpainting_files_clean_like_the_shipped_pair(acs_copy, tmp_path):
    inpaint = tmp_path / "inpaint.pth"
    shutil.copy(weights_path(INPAINT_MODELS["ACS-WFC-F606W-2-32"]), inpaint)
    files = load_detector(f"deepcr:{acs_copy}+{inpaint}")
    shipped = load_detector("deepcr:ACS-WFC+ACS-WFC-F606W-2-32")
    assert "+ inpaint file inpaint.pth UNet2BatchNorm(2,1,32) scale=100" in files.version
    img = np.random.default_rng(1).normal(120, 11, (128, 96)).astype(np.float32)
    img[30:32, 40] += 2500
    a, b = files.detect(img), shipped.detect(img)
    assert a.mask[30, 40] and np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.cleaned, b.cleaned)
