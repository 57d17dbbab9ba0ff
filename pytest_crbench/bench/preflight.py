"""Checks made once when a run starts, before anything is computed.

Every mistake a user can make in the configuration is reported here as one error
(pytest turns it into a usage error, exit status 4), instead of failing each of the
run's items: an unknown dataset or detector spec, a detector whose model does not load,
an output path that cannot be written, a data folder that cannot be created, and a
floors file whose tables match nothing the run checks (which would switch its gate off).
"""

from __future__ import annotations

from pathlib import Path

from pytest_crbench.errors import CRBenchConfigError

__all__ = ["preflight"]


def _check_data_dir(settings) -> Path:
    from pytest_crbench.datasets.cache import ENV_DATA_DIR, data_dir

    root = data_dir(settings.data_dir)
    where = (settings.origin.get("data_dir") if settings.data_dir is not None
             else f"${ENV_DATA_DIR}")
    blocker = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CRBenchConfigError(
            f"{where}: cannot use {root}: {blocker} is a file, not a folder")
    return root


def preflight(session) -> None:
    """Check ``session``'s settings (a :class:`~pytest_crbench.bench.run.BenchSession`)
    and load its detectors (kept in the session's cache); raise
    :class:`~pytest_crbench.errors.CRBenchError` naming the option, file or key."""
    from pytest_crbench.bench.floors import check_floors_match
    from pytest_crbench.bench.settings import check_output_paths
    from pytest_crbench.datasets.loading import available, check_dataset, is_scored
    from pytest_crbench.science.regions import region_names

    s = session.settings
    check_output_paths(s)
    root = _check_data_dir(s)
    for name in s.dataset:
        check_dataset(name, data_dir=root)
    for spec in s.model + ([s.baseline] if s.baseline else []):
        session.detector(spec)  # an unknown spec or a model that does not load
    if session.floors:
        known = available(root)
        check_floors_match(
            session.floors, s.floors,
            # the baseline's floors gate the candidates that have none of their own
            detectors=s.model + ([s.baseline] if s.baseline else []), datasets=known,
            regions=region_names(s.k),
            smoke_only={n for n in known if not is_scored(n, data_dir=root)})
