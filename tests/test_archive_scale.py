"""CSST-size data written strip by strip, the strip-wise reference, the deepCR engine's
batching and reduced precision (speed and memory are measured in benchmarks/)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from pytest_crbench.datasets.csst import CSST, build_chunked
from pytest_crbench.datasets.fits import read_exposures
from pytest_crbench.datasets.simulate import PRESETS, GroupSpec, SimSpec, simulate_group
from pytest_crbench.errors import CRBenchConfigError, CRBenchDetectorError
from pytest_crbench.science.reference import build_reference, nanmedian0, reference_for


def test_csst_preset_is_a_full_chip():
    spec = PRESETS["sim-csst"]
    assert spec.shape == (9232, 9216) and spec.camera == "csst"
    assert all(t == 150.0 for g in spec.groups for t in g.exptimes)


def test_chunked_chips_do_not_depend_on_the_strip_size(tmp_path):
    spec = SimSpec("t", (700, 300), (GroupSpec("2027-06-01", (150.0, 300.0)),), seed=7,
                   camera="csst")
    chips = []
    for rows in (128, 1024):
        dest = tmp_path / str(rows)
        dest.mkdir()
        groups = build_chunked(spec, dest, CSST, strip_rows=rows)
        entry = groups[0]["exposures"][1]
        (exp,) = read_exposures(dest / entry["file"], name=entry["name"])
        chips.append((exp, entry))
    (a, ea), (b, eb) = chips
    for attr in ("sci", "err", "dq", "crtruth"):
        assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
    assert ea == eb
    # the camera's facts reach the exposure; the manifest statistics are the pixels'
    assert (a.instrument, a.read_noise, a.exptime) == ("CSST", CSST.read_noise, 300.0)
    assert ea["meta"]["cr_fraction"] == pytest.approx(np.mean(a.crtruth > 0))
    assert 0 < ea["meta"]["cr_fraction"] < 0.01
    assert a.sci.mean() > (0.06 + CSST.dark) * 300


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
                  elements=st.one_of(st.just(np.nan), st.floats(-1e4, 1e4, width=32))))
def test_nanmedian0_equals_numpy(stack):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lanes
        expected = np.nanmedian(stack, axis=0)
    assert np.array_equal(nanmedian0(stack), expected, equal_nan=True)


@pytest.mark.parametrize("exptimes", [(500.0, 1000.0), (500.0, 1000.0, 2000.0, 3000.0)])
def test_reference_does_not_depend_on_the_strip_size(exptimes):
    group = simulate_group((150, 120), exptimes, seed=3)
    whole = build_reference(group)
    for rows in (1, 7, 64):
        clean, crmask, ignore = reference_for(group, 1, strip_rows=rows)
        assert np.array_equal(clean, whole.clean[1])
        assert np.array_equal(crmask, whole.crmask[1])
        assert np.array_equal(ignore, whole.ignore[1])


@pytest.fixture(scope="module")
def image():
    return simulate_group((200, 260), (2000.0, 1000.0), seed=5).exposures[0].sci


@pytest.fixture(scope="module")
def deepcr():
    pytest.importorskip("deepCR")
    from pytest_crbench.detectors.deepcr import DeepCRDetector

    return DeepCRDetector


def test_batched_tiles_equal_single_tiles(deepcr, image):
    one = deepcr("ACS-WFC", patch=64).detect(image)
    batched = deepcr("ACS-WFC", patch=64, batch=7).detect(image)
    assert np.array_equal(one.probability, batched.probability)
    assert "batch=7" in repr(deepcr("ACS-WFC", patch=64, batch=7))


def test_bf16_agrees_with_fp32_and_says_so(deepcr, image):
    fp32 = deepcr("ACS-WFC").detect(image)
    det = deepcr("ACS-WFC", precision="bf16")
    bf16 = det.detect(image)
    assert "precision=bf16" in det.version and "precision" not in deepcr("ACS-WFC").version
    assert bf16.probability.dtype == np.float32
    assert np.mean(bf16.mask == fp32.mask) > 0.999


def test_fp16_refuses_electron_images_beyond_its_range(deepcr, image):
    with pytest.raises(CRBenchDetectorError, match="precision fp16 cannot hold.*bf16 or fp32"):
        deepcr("ACS-WFC", precision="fp16").detect(image * 0 + 7e4)


def test_precision_values_are_checked(deepcr):
    with pytest.raises(CRBenchDetectorError,
                       match="precision must be one of fp32, tf32, bf16, fp16"):
        deepcr("ACS-WFC", precision="int8")
    with pytest.raises(CRBenchDetectorError, match="tf32 .*needs a CUDA device.*'cpu'"):
        deepcr("ACS-WFC", precision="tf32", device="cpu")
    from pytest_crbench.bench.settings import resolve

    with pytest.raises(CRBenchConfigError, match="--crbench-precision: expected one of"):
        resolve({"precision": "fp64"}, {}, {})


def test_cpu_detector_tunes_the_allocator_once(deepcr):
    from pytest_crbench.detectors import torch_runtime as module

    deepcr("ACS-WFC")
    assert module._MALLOC_TUNED and module.tune_malloc() is True


@pytest.mark.gpu
def test_cuda_batches_match_the_cpu(deepcr, image):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from pytest_crbench.bench.timing import synced_timer

    cpu = deepcr("ACS-WFC").detect(image)
    gpu_det = deepcr("ACS-WFC", device="cuda", batch=4, patch=128)
    t0 = synced_timer()
    gpu = gpu_det.detect(image)
    assert synced_timer() > t0
    assert np.mean(gpu.mask == cpu.mask) > 0.9999
    bf16 = deepcr("ACS-WFC", device="cuda", precision="bf16").detect(image)
    assert np.mean(bf16.mask == cpu.mask) > 0.999
    tf32_det = deepcr("ACS-WFC", device="cuda", precision="tf32")
    assert "precision=tf32" in tf32_det.version
    before = torch.backends.cudnn.allow_tf32
    assert np.mean(tf32_det.detect(image).mask == cpu.mask) > 0.9999
    assert torch.backends.cudnn.allow_tf32 == before  # the process's setting is restored


def test_astroscrappy_strips_give_the_whole_image_mask(monkeypatch):
    from pytest_crbench.detectors import astroscrappy as module

    exp = simulate_group((400, 300), (1000.0, 2000.0), seed=1).exposures[1]
    det = module.make_detector()
    whole = det.detect(exp.sci, exp.bad_pixels, exp)
    monkeypatch.setattr(module, "STRIP_PIXELS", 1000)
    monkeypatch.setattr(module, "STRIP_ROWS", 96)
    strips = det.detect(exp.sci, exp.bad_pixels, exp)
    assert whole.mask.sum() > 100
    assert np.array_equal(strips.mask, whole.mask)
    assert np.allclose(strips.cleaned, whole.cleaned, atol=0.5)
    assert "strips=1024+64 above 16.7772 Mpix" in det.version


def test_focus_loading_reads_the_other_exposures_row_by_row(tmp_path):
    from pytest_crbench.datasets.fits import LazyExposure
    from pytest_crbench.datasets.simulate import _load_group

    spec = SimSpec("t", (300, 200), (GroupSpec("2027-06-01", (150.0, 300.0, 200.0)),),
                   seed=7, camera="csst")
    (g,) = build_chunked(spec, tmp_path, CSST)
    full, lazy = _load_group(tmp_path, g), _load_group(tmp_path, g, focus=1)
    assert [type(e) for e in lazy.exposures] == [LazyExposure, type(full.exposures[1]),
                                                 LazyExposure]
    assert lazy.exposures[0].exptime == 150.0 and lazy.exposures[0].shape == (300, 200)
    for a, b in zip(reference_for(full, 1, strip_rows=64), reference_for(lazy, 1, strip_rows=64)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("how", ["zero", "scaled"])
def test_lazily_read_exposures_are_checked_like_loaded_ones(tmp_path, how):
    """A group read around one chip (the others row by row) is refused for an empty or
    mis-scaled exposure with the error a fully loaded group gets."""
    from astropy.io import fits

    from pytest_crbench.datasets.simulate import _load_group
    from pytest_crbench.errors import CRBenchDataError

    spec = SimSpec("t", (300, 200), (GroupSpec("2027-06-01", (150.0, 300.0, 200.0)),),
                   seed=7, camera="csst")
    (g,) = build_chunked(spec, tmp_path, CSST)
    bad = g["exposures"][2]
    with fits.open(tmp_path / bad["file"], mode="update") as hdul:
        hdul["SCI"].data = hdul["SCI"].data * (0 if how == "zero" else 1000)
    from pytest_crbench._util import sha256_file

    bad["sha256"] = sha256_file(tmp_path / bad["file"])
    errors = []
    for focus in (None, 0):
        group = _load_group(tmp_path, g, focus=focus)
        with pytest.raises(CRBenchDataError) as err:
            reference_for(group, 0, strip_rows=64)
        errors.append(str(err.value))
    want = "SCI is zero everywhere" if how == "zero" else "x off the median of its group"
    assert all(want in e and bad["file"] in e for e in errors), errors
