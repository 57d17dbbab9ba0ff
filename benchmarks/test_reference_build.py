"""Time to build the reference of one simulated group, per reference rule.

A group of the ``sim`` preset's shape (6 exposures of 512 x 512): the blotted median of
each exposure, the rule's flags, the saturation boxes.  ``astrodrizzle`` adds the
derivative image and the absolute excess to what ``noise`` computes.
"""

import pytest

from pytest_crbench.datasets.simulate import PRESETS, simulate_group
from pytest_crbench.science.reference import REFERENCE_RULES, ReferenceConfig, build_reference


@pytest.fixture(scope="module")
def sim_group():
    spec = PRESETS["sim"]
    g = spec.groups[-1]
    return simulate_group(spec.shape, g.exptimes, g.date, seed=spec.seed, name="bench")


@pytest.mark.parametrize("rule", REFERENCE_RULES)
@pytest.mark.benchmark(group="crbench-reference")
def test_reference_build_time(benchmark, sim_group, rule):
    config = ReferenceConfig(rule=rule)
    ref = benchmark.pedantic(build_reference, args=(sim_group, config), rounds=3,
                             warmup_rounds=0, iterations=1)
    assert len(ref.crmask) == len(sim_group.exposures)
    mpix = sum(e.sci.size for e in sim_group.exposures) / 1e6
    benchmark.extra_info.update({"rule": rule, "exposures": len(sim_group.exposures),
                                 "mpix": mpix})
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["mpix_per_s"] = mpix / benchmark.stats.stats.median
