"""The inference benchmark pytest-crbench ships: one pytest-benchmark item per
configured (detector, dataset), timing ``detect`` on the dataset's first exposure.

Enable it with ``--crbench-benchmark`` (or ``benchmark = true`` in ``[tool.crbench]``,
or the ini key ``crbench_benchmark``); a downstream repository needs no test file.
The items are collected from this module under the fixed node id
``crbench-benchmark`` — ``crbench-benchmark::test_inference_time[<spec>-<dataset>]`` —
whatever the folder the package is installed in, so pytest-benchmark's
``--benchmark-compare`` matches the same benchmark across runs, machines and model
versions.  The model version is not in the name (a retrained model is the *same*
benchmark, timed again) but in the saved JSON's ``extra_info["version"]``, with the
detector spec, the exposure, its shape and Mpix, Mpix/s, peak RSS and peak CUDA memory
and the device.  Timing goes through :func:`~pytest_crbench.bench.timing.synced_timer`
(GPU work is synchronised inside the timed region).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_crbench.bench.timing import PeakMemory, synced_timer

__all__ = ["NODEID", "benchmark_items", "test_inference_time"]

#: The node id every shipped benchmark item lives under.
NODEID = "crbench-benchmark"


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


class _Benchmarks(pytest.Module):
    """This module, collected under :data:`NODEID` whatever ``python_files`` /
    ``python_functions`` the user's project configures."""

    def istestfunction(self, obj, name: str) -> bool:
        return name == "test_inference_time" and callable(obj)


def benchmark_items(session: pytest.Session) -> list[pytest.Item]:
    """The benchmark items (parametrized by the plugin's ``pytest_generate_tests``)."""
    module = _Benchmarks.from_parent(session, path=Path(__file__), nodeid=NODEID)
    items: list[pytest.Item] = []
    for node in module.collect():
        if isinstance(node, pytest.Item):
            items.append(node)
    return items
