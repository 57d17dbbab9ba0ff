"""Cost of the bootstrap intervals and of a paired comparison (pytest-benchmark).

Sized like the paper's data set: 20 groups x 6 exposures, the 8 regions, 5,000 star
images per detector; 1000 replicates.  Measured, not asserted.
"""

import numpy as np
import pytest

from pytest_crbench.bench.comparison import compare_samples
from pytest_crbench.bench.intervals import Sample, sample_intervals
from pytest_crbench.science.bootstrap import BootstrapConfig

REGIONS = ["full", "k3", "k5", "k10", "k20", "k40", "k80", "k160"]


def paper_sized_sample(detector: str, seed: int) -> Sample:
    rng = np.random.default_rng(seed)
    keys = [(f"g{g:02d}", f"g{g:02d}_e{e}") for g in range(20) for e in range(6)]
    counts = {r: rng.integers(0, 5000 >> i, size=(len(keys), 3)) for i, r in enumerate(REGIONS)}
    stars = [{"group": g, "exposure": e, "star_id": i,
              "size_bin": ("16-50", "50-200", "200-400")[i % 3],
              "contaminated": bool(rng.random() < 0.4), "anomalous": bool(rng.random() < 0.2),
              "ratio_cleaned": float(rng.normal(1.0, 0.05))}
             for g, e in keys for i in range(42)]
    stability = {f"g{g:02d}": {"f1": rng.uniform(0.8, 0.9), "f2": rng.uniform(0.8, 0.9),
                               "rms": rng.uniform(0.01, 0.03)} for g in range(20)}
    return Sample(detector, "paper-sized", "1", keys, REGIONS, counts, stars, stability)


@pytest.mark.benchmark(group="crbench-statistics")
def test_intervals_of_every_score(benchmark):
    sample = paper_sized_sample("a", 1)
    out = benchmark.pedantic(sample_intervals, args=(sample, BootstrapConfig()), rounds=3,
                             iterations=1)
    benchmark.extra_info.update({"replicates": 1000, "exposures": len(sample.keys),
                                 "star_images": len(sample.stars), "scores": len(out)})


@pytest.mark.benchmark(group="crbench-statistics")
def test_paired_comparison(benchmark):
    base, cand = paper_sized_sample("a", 1), paper_sized_sample("b", 2)
    out = benchmark.pedantic(compare_samples, args=(cand, base, BootstrapConfig()), rounds=3,
                             iterations=1)
    benchmark.extra_info.update({"replicates": 1000, "differences": len(out)})
