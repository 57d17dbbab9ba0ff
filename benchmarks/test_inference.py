"""Inference time of every configured detector on one exposure (pytest-benchmark).

Run with ``pytest --crbench benchmarks/``; each detector of ``--crbench-model`` gets
one benchmark.  Mpix/s and peak memory land in the benchmark JSON's ``extra_info``.
Compare runs with ``--benchmark-autosave`` / ``--benchmark-compare``.
"""

import pytest

from pytest_crbench.bench.timing import PeakMemory, synced_timer


@pytest.mark.benchmark(group="crbench-inference", timer=synced_timer)
def test_inference_time(benchmark, crbench_detector, crbench_detector_spec, crbench_exposure):
    exposure = crbench_exposure
    image, ignore = exposure.sci, exposure.bad_pixels
    crbench_detector.detect(image, ignore, exposure)  # warm-up outside the statistics
    with PeakMemory() as peak:
        result = benchmark.pedantic(crbench_detector.detect, args=(image, ignore, exposure),
                                    rounds=3, warmup_rounds=1, iterations=1)
    assert result is not None
    mpix = image.size / 1e6
    benchmark.extra_info.update({
        "detector": crbench_detector_spec, "version": getattr(crbench_detector, "version", ""),
        "exposure": exposure.name, "shape": list(image.shape), "mpix": mpix,
        "peak_rss_bytes": peak.rss_bytes, "peak_cuda_bytes": peak.cuda_bytes,
        "device": str(getattr(crbench_detector, "device", "cpu")),
    })
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["mpix_per_s"] = mpix / benchmark.stats.stats.median
