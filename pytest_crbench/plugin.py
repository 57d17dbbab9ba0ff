"""The pytest entry point of pytest-crbench (``pytest11: crbench``).

The hooks, options and fixtures live in :mod:`pytest_crbench.pytest_plugin`; this module
only re-exports them so that pytest registers them under the stable name
``pytest_crbench.plugin``.  Loading it imports pytest and nothing heavy.
"""

from pytest_crbench.pytest_plugin.fixtures import (  # noqa: F401  (registered fixtures)
    crbench_dataset, crbench_dataset_name, crbench_detector, crbench_detector_spec,
    crbench_exposure, crbench_group, crbench_predictions, crbench_prepared,
    crbench_intervals, crbench_reference, crbench_scores, crbench_session,
)
from pytest_crbench.pytest_plugin.hooks import (  # noqa: F401  (registered hooks)
    pytest_addoption, pytest_collection_modifyitems, pytest_configure,
    pytest_generate_tests, pytest_sessionfinish, pytest_terminal_summary,
)

__all__ = ["crbench_dataset", "crbench_dataset_name", "crbench_detector",
           "crbench_detector_spec", "crbench_exposure", "crbench_group",
           "crbench_predictions", "crbench_prepared", "crbench_reference",
           "crbench_scores", "crbench_session", "pytest_addoption",
           "pytest_collection_modifyitems", "pytest_configure", "pytest_generate_tests",
           "pytest_sessionfinish", "pytest_terminal_summary"]
