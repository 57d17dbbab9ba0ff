"""Archive-scale measurements, side by side in one run (``pytest benchmarks/test_archive.py
--archive -s``): our deepCR engine against stock ``deepCR.clean()``, the harness overhead
per exposure, 1 against 2 LocalCluster workers on ``sim-full``, and ``sim-csst`` on
``local:2`` with the peak resident memory of every worker.

Each test prints its table and adds it to ``.benchmarks/crbench-archive.json`` (one key
per test), from which the README's "At archive scale" figures are taken.  Timings are
wall-clock on whatever else the machine runs: compare ratios taken in one run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from pytest_crbench.bench.timing import PeakMemory, synced_timer

pytestmark = pytest.mark.archive
KS = (3, 5, 10, 20, 40, 80, 160)
OUT = Path(".benchmarks") / "crbench-archive.json"


def _record(key: str, value) -> None:
    OUT.parent.mkdir(exist_ok=True)
    doc = json.loads(OUT.read_text()) if OUT.is_file() else {}
    doc[key] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average": os.getloadavg(), "cpus": os.cpu_count(), **value}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\n{key}: {json.dumps(doc[key], indent=1)}")


@pytest.fixture(scope="module")
def data_dir():
    from pytest_crbench.datasets.cache import data_dir

    return data_dir(None)


@pytest.fixture(scope="module")
def full_group(data_dir):
    from pytest_crbench.datasets.loading import load_group

    return load_group("sim-full", 0, data_dir=data_dir)


def _timed(f, *args):
    with PeakMemory() as pm:
        t0 = synced_timer()
        out = f(*args)
        seconds = synced_timer() - t0
    return out, seconds, pm.rss_bytes


def test_deepcr_engine_against_stock_clean(full_group):
    """Same 4096 x 2048 image, interleaved runs: Mpix/s, agreement, where they differ."""
    pytest.importorskip("deepCR")
    from pytest_crbench.detectors.deepcr import DeepCRDetector

    exp = full_group.exposures[0]
    ours, stock = DeepCRDetector("ACS-WFC"), DeepCRDetector("ACS-WFC", engine="stock")
    ours.detect(exp.sci[:512, :512])
    stock.detect(exp.sci[:512, :512])
    times = {"ours": [], "stock": []}
    peaks = {}
    for _ in range(2):
        for name, det in (("ours", ours), ("stock", stock)):
            pred, s, peak = _timed(det.detect, exp.sci)
            times[name].append(s)
            peaks[name] = max(peaks.get(name, 0), peak)
            if name == "ours":
                a = pred
            else:
                b = pred
    differ = a.mask != b.mask
    ys, xs = np.nonzero(differ)
    # stock clean() cuts 1024-px tiles without overlap: distance to the nearest seam
    seam = np.minimum(np.minimum(ys % 1024, -ys % 1024), np.minimum(xs % 1024, -xs % 1024))
    mpix = exp.sci.size / 1e6
    row = {"shape": list(exp.sci.shape),
           **{f"{k}_seconds": min(v) for k, v in times.items()},
           **{f"{k}_mpix_per_s": mpix / min(v) for k, v in times.items()},
           "speedup": min(times["stock"]) / min(times["ours"]),
           **{f"{k}_peak_rss_gb": v / 1e9 for k, v in peaks.items()},
           "mask_agreement": float(1 - differ.mean()), "pixels_differing": int(differ.sum()),
           "differing_within_32px_of_a_stock_seam": int((seam < 32).sum()),
           "max_probability_difference": float(np.abs(a.probability - b.probability).max())}
    _record("deepcr_ours_vs_stock", row)
    assert row["mask_agreement"] >= 0.9999


#: Detectors of this repository's main job: the shared part of the harness is split
#: over them (each exposure's reference and stars serve every detector).
MAIN_JOB_DETECTORS = 10


def test_harness_overhead_per_exposure(full_group):
    """The harness's time per exposure against the detector's, as a serial run pays it:
    the group's references, region maps and audit (``prepare``, once per group, split
    over its exposures) and the stars (once per exposure) are shared by every detector;
    the counts and threshold sweep (``score_exposure`` minus the detector's own time)
    and the photometry are each detector's.  Reported for one detector alone and with
    the shared part split over the main job's detectors; a Dask worker's preparation of
    one exposure (``prepare_exposure``: the group's median made for each exposure) too."""
    from pytest_crbench.bench.analysis import ExposurePhotometry, StarCatalog
    from pytest_crbench.bench.evaluation import (exposure_sweep, prepare, prepare_exposure,
                                                 score_exposure)
    from pytest_crbench.detectors.specs import load_detector
    from pytest_crbench.science.exposures import Dataset
    from pytest_crbench.science.photometry import PhotometryConfig, find_stars

    config = PhotometryConfig()
    specs = ["deepcr:ACS-WFC", "astroscrappy"]
    dets = {s: load_detector(s) for s in specs}
    n = len(full_group.exposures)
    prepared, prep_s, _ = _timed(prepare, Dataset("sim-full", [full_group], "", {}), KS)
    rows = []
    for i, pe in enumerate(prepared.exposures):
        _, dask_prep_s, _ = _timed(prepare_exposure, full_group, i, KS)
        stars, stars_s, _ = _timed(find_stars, pe.clean, pe.ignore, config)
        shared = prep_s / n + stars_s
        for spec, det in dets.items():
            (er, pred), score_s, peak = _timed(score_exposure, det, pe, KS)
            _, sweep_s, _ = _timed(exposure_sweep, pred, pe, KS)
            collector = ExposurePhotometry(StarCatalog({}, config))
            _, phot_s, _ = _timed(collector.measure, pe, pred, stars)
            own = score_s - er.seconds + sweep_s + phot_s
            rows.append({"exposure": pe.exposure.name, "detector": spec,
                         "detector_s": er.seconds, "prepare_share_s": prep_s / n,
                         "dask_prepare_exposure_s": dask_prep_s, "stars_s": stars_s,
                         "counts_s": score_s - er.seconds, "sweep_s": sweep_s,
                         "photometry_s": phot_s,
                         "overhead_pct": 100 * (shared + own) / er.seconds,
                         "overhead_main_job_pct": 100 * (shared / MAIN_JOB_DETECTORS + own)
                         / er.seconds,
                         "peak_rss_gb": peak / 1e9})

    def median(spec, key):
        return float(np.median([r[key] for r in rows if r["detector"] == spec]))

    summary = {spec: {"median_overhead_pct": median(spec, "overhead_pct"),
                      "median_overhead_main_job_pct": median(spec, "overhead_main_job_pct"),
                      "median_detector_s": median(spec, "detector_s")} for spec in specs}
    _record("harness_overhead", {"per_exposure": rows, "summary": summary,
                                 "main_job_detectors": MAIN_JOB_DETECTORS})


def _vm_hwm() -> int:
    from pytest_crbench.bench.timing import _vm_hwm_bytes

    return _vm_hwm_bytes()


def _cluster_run(address: str, dataset: str, specs: list[str]):
    from pytest_crbench.bench.distributed import DaskEngine, WorkerOptions
    from pytest_crbench.bench.settings import resolve

    opts = WorkerOptions.from_settings(resolve({"model": specs}, {}, {}))
    with DaskEngine(address) as engine:
        engine.client.run(lambda: __import__("pytest_crbench.detectors.specs"))
        t0 = time.perf_counter()
        result = engine.evaluate(dataset, specs, opts)
        wall = time.perf_counter() - t0
        peaks = engine.client.run(_vm_hwm)
    return result, wall, {w: p / 1e9 for w, p in peaks.items()}


def test_scaling_one_against_two_workers(data_dir):
    """sim-full (12 chips of 4096 x 2048) with deepCR on local:1, then local:2."""
    specs = ["deepcr:ACS-WFC"]
    one, wall1, peak1 = _cluster_run("local:1", "sim-full", specs)
    two, wall2, peak2 = _cluster_run("local:2", "sim-full", specs)
    same = all(a.counts == b.counts for a, b in zip(one.evaluations[specs[0]].exposures,
                                                   two.evaluations[specs[0]].exposures))
    det_s = one.evaluations[specs[0]].seconds
    _record("scaling_sim_full", {
        "detectors": specs, "local1_seconds": wall1, "local2_seconds": wall2,
        "speedup": wall1 / wall2, "local1_detector_seconds": det_s,
        "per_chip_seconds_local1": wall1 / 12, "identical_counts": same,
        "peak_rss_gb_per_worker_local1": list(peak1.values()),
        "peak_rss_gb_per_worker_local2": list(peak2.values())})
    assert same


def test_csst_chip_on_two_workers(data_dir):
    """sim-csst (3 chips of 9216 x 9232) with deepCR and astroscrappy on local:2."""
    specs = ["deepcr:ACS-WFC", "astroscrappy"]
    result, wall, peaks = _cluster_run("local:2", "sim-csst", specs)
    _record("csst_local2", {
        "detectors": specs, "seconds": wall, "chips": 3, "per_chip_seconds": wall / 3 * 2,
        "detector_seconds": {s: result.evaluations[s].seconds for s in specs},
        "peak_rss_gb_per_worker": list(peaks.values()),
        "recall_full": {s: result.evaluations[s].pooled("full").tp
                        / max(1, result.evaluations[s].pooled("full").tp
                              + result.evaluations[s].pooled("full").fn) for s in specs}})


def _gpu_run(det, image, repeats: int = 3):
    """Best-of-``repeats`` GPU-synchronised seconds of ``det.detect``, its prediction and
    the peak GPU memory allocated (bytes; None on the CPU)."""
    det.detect(image[:512, :512])  # warm-up: kernels, cuDNN plans, pinned buffers
    best, pred, gpu_peak = float("inf"), None, None
    for _ in range(repeats):
        with PeakMemory() as pm:
            t0 = synced_timer()
            pred = det.detect(image)
            seconds = synced_timer() - t0
        best, gpu_peak = min(best, seconds), pm.cuda_bytes
    return best, pred, gpu_peak


@pytest.mark.gpu
def test_gpu_engine_batches_precisions_and_stock():
    """deepCR on CUDA, one 4096 x 2048 simulated chip: our engine by batch size and
    precision, stock ``deepCR.clean()`` on the same GPU, each with its mask agreement
    with our fp32 engine on the CPU; then a CSST-size chip (GPU-synchronised timings)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("deepCR")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from pytest_crbench.datasets.simulate import simulate_group
    from pytest_crbench.detectors.deepcr import DeepCRDetector
    from pytest_crbench.errors import CRBenchDetectorError

    image = simulate_group((2048, 4096), (1000.0, 2000.0), seed=20230502).exposures[1].sci
    mpix = image.size / 1e6
    cpu_s, cpu, _ = _gpu_run(DeepCRDetector("ACS-WFC", device="cpu"), image, repeats=1)
    rows: dict = {"cpu_fp32": {"seconds": cpu_s, "mpix_per_s": mpix / cpu_s,
                               "threads": torch.get_num_threads()}}

    def measure(name, **kwargs):
        try:
            seconds, pred, peak = _gpu_run(DeepCRDetector("ACS-WFC", device="cuda", **kwargs),
                                           image)
        except CRBenchDetectorError as exc:  # fp16 refuses images beyond float16
            rows[name] = {"refused": str(exc)}
            return
        differ = pred.mask != cpu.mask
        rows[name] = {"seconds": seconds, "mpix_per_s": mpix / seconds,
                      "speedup_vs_cpu": cpu_s / seconds,
                      "gpu_peak_gb": None if peak is None else peak / 1e9,
                      "mask_agreement_vs_cpu_fp32": float(1 - differ.mean()),
                      "pixels_differing": int(differ.sum()),
                      "max_probability_difference": float(
                          np.abs(pred.probability - cpu.probability).max())}

    for batch in (1, 4, 16):
        measure(f"cuda_fp32_batch{batch}", batch=batch)
    for precision in ("tf32", "bf16", "fp16"):
        measure(f"cuda_{precision}", precision=precision)
    measure("cuda_stock_clean", engine="stock")
    # a CSST-size chip (9232 x 9216) made of the same pixels: throughput at that size
    chip = np.tile(image, (5, 3))[:9232, :9216].copy()
    for name, kwargs in (("csst_chip_cuda_fp32", {}),
                         ("csst_chip_cuda_tf32", {"precision": "tf32"}),
                         ("csst_chip_cuda_bf16", {"precision": "bf16"})):
        seconds, _, peak = _gpu_run(DeepCRDetector("ACS-WFC", device="cuda", **kwargs), chip,
                                    repeats=2)
        rows[name] = {"seconds": seconds, "mpix_per_s": chip.size / 1e6 / seconds,
                      "gpu_peak_gb": None if peak is None else peak / 1e9}
    _record("deepcr_gpu", {"device": torch.cuda.get_device_name(0),
                           "torch": torch.__version__, "shape": list(image.shape),
                           "runs": rows})
    assert rows["cuda_fp32_batch4"]["mask_agreement_vs_cpu_fp32"] >= 0.9999
