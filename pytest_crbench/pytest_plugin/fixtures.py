"""Fixtures for users' own benchmark tests (active under ``--crbench``).

``crbench_detector`` is parametrized over every configured detector and
``crbench_dataset`` over every configured dataset, so a test such as::

    def test_no_false_positives_on_sky(crbench_scores):
        assert crbench_scores["full"]["precision"].value > 0.9

runs once per (detector, dataset).  Without ``--crbench`` these tests are skipped
with a message saying so.
"""

from __future__ import annotations

import pytest

from pytest_crbench.pytest_plugin.state import bench_session

__all__ = ["crbench_session", "crbench_detector_spec", "crbench_dataset_name",
           "crbench_detector", "crbench_prepared", "crbench_dataset", "crbench_exposure",
           "crbench_group", "crbench_reference", "crbench_predictions", "crbench_scores",
           "crbench_intervals"]


def _bench(request):
    bench = bench_session(request.config, required=False)
    if bench is None:
        pytest.skip("crbench fixtures need the --crbench option")
    return bench


@pytest.fixture
def crbench_session(request):
    """The run's :class:`~pytest_crbench.bench.run.BenchSession`."""
    return _bench(request)


@pytest.fixture
def crbench_detector_spec(request) -> str:
    """The detector spec of this test instance (parametrized by the plugin)."""
    return request.param


@pytest.fixture
def crbench_dataset_name(request) -> str:
    """The dataset name of this test instance (parametrized by the plugin)."""
    return request.param


@pytest.fixture
def crbench_detector(crbench_session, crbench_detector_spec):
    """The loaded detector (deepCR model, astroscrappy, or a user's)."""
    return crbench_session.detector(crbench_detector_spec)


@pytest.fixture
def crbench_prepared(crbench_session, crbench_dataset_name):
    """The dataset with references, region maps and reference audit."""
    return crbench_session.prepared(crbench_dataset_name)


@pytest.fixture
def crbench_dataset(crbench_session, crbench_dataset_name):
    """The :class:`~pytest_crbench.science.exposures.Dataset` (smoke-only datasets too)."""
    return crbench_session.dataset(crbench_dataset_name)


@pytest.fixture
def crbench_exposure(crbench_dataset):
    """The first exposure of the dataset (what the inference benchmark times)."""
    return crbench_dataset.groups[0].exposures[0]


@pytest.fixture
def crbench_group(crbench_dataset):
    """The first group of the dataset."""
    return crbench_dataset.groups[0]


@pytest.fixture
def crbench_reference(crbench_prepared, crbench_group):
    """The :class:`~pytest_crbench.science.exposures.Reference` of ``crbench_group``."""
    from pytest_crbench.science.exposures import Reference

    pes = [pe for pe in crbench_prepared.exposures if pe.group is crbench_group]
    return Reference(group=crbench_group.name, clean=[p.clean for p in pes],
                     crmask=[p.crmask for p in pes], ignore=[p.ignore for p in pes])


@pytest.fixture
def crbench_predictions(crbench_session, crbench_detector_spec, crbench_dataset_name):
    """The detector's :class:`~pytest_crbench.bench.evaluation.Evaluation` (masks per exposure)."""
    return crbench_session.evaluation(crbench_detector_spec, crbench_dataset_name)


@pytest.fixture
def crbench_scores(crbench_predictions):
    """Pooled scores: ``{region: {metric: Score}}`` — ``Score.value`` a float in [0, 1] or
    None (``Score.reason`` then says why)."""
    return {region: crbench_predictions.scores(region).as_dict()
            for region in crbench_predictions.regions}


@pytest.fixture
def crbench_intervals(crbench_session, crbench_detector_spec, crbench_dataset_name):
    """Bootstrap intervals of the pooled pixel scores: ``{region: {metric: Interval}}`` —
    ``Interval.value`` the pooled score, ``Interval.low`` / ``.high`` the bounds at
    ``--crbench-confidence`` (None where too few positives or groups; ``.reason`` says
    why)."""
    out: dict = {}
    for si in crbench_session.intervals(crbench_detector_spec, crbench_dataset_name):
        if si.kind == "pixels":
            out.setdefault(si.part, {})[si.metric] = si.interval
    return out
