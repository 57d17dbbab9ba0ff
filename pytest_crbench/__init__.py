"""pytest-crbench: benchmark and regression-gate cosmic-ray detectors for CCD images.

The layers, lowest first: :mod:`~pytest_crbench.science` (the paper's method: reference,
star regions, scores, photometry, density, stability — numpy/astropy code usable without
pytest), :mod:`~pytest_crbench.datasets` (simulator, real HST loaders, registry, cache),
:mod:`~pytest_crbench.detectors`, :mod:`~pytest_crbench.bench` (evaluation, analysis,
checks, floors, results, run state), :mod:`~pytest_crbench.reporting` (terminal, report,
outputs) and :mod:`~pytest_crbench.pytest_plugin` (the only code that imports pytest).

The names a user touches are importable from here; they are loaded on first use, so
``import pytest_crbench`` (which pytest does when it loads the plugin) imports nothing
heavy.  See "Use from Python" in the README.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pytest_crbench._version import __version__

#: public name → module that defines it
_EXPORTS = {
    # errors
    "CRBenchError": "pytest_crbench.errors",
    "CRBenchConfigError": "pytest_crbench.errors",
    "CRBenchDataError": "pytest_crbench.errors",
    "CRBenchDetectorError": "pytest_crbench.errors",
    "CRBenchMissingDataError": "pytest_crbench.errors",
    # data model and science
    "Exposure": "pytest_crbench.science.exposures",
    "Group": "pytest_crbench.science.exposures",
    "Dataset": "pytest_crbench.science.exposures",
    "build_reference": "pytest_crbench.science.reference",
    "ReferenceConfig": "pytest_crbench.science.reference",
    "region_map": "pytest_crbench.science.regions",
    "region_names": "pytest_crbench.science.regions",
    "Counts": "pytest_crbench.science.metrics",
    "confusion": "pytest_crbench.science.metrics",
    "score": "pytest_crbench.science.metrics",
    "scores": "pytest_crbench.science.metrics",
    "ScoreSet": "pytest_crbench.science.metrics",
    # datasets and detectors
    "load_dataset": "pytest_crbench.datasets.loading",
    "Detector": "pytest_crbench.detectors.base",
    "Prediction": "pytest_crbench.detectors.base",
    "load_detector": "pytest_crbench.detectors.specs",
    # evaluation
    "make_settings": "pytest_crbench.bench.settings",
    "BenchSession": "pytest_crbench.bench.run",
    "DetectorRun": "pytest_crbench.bench.run",
    "prepare": "pytest_crbench.bench.evaluation",
    "evaluate": "pytest_crbench.bench.evaluation",
    "write_outputs": "pytest_crbench.reporting.outputs",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_crbench' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
