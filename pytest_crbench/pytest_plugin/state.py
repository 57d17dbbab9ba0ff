"""Where the run state lives during a pytest session: ``config.stash``.

The hooks create the :class:`~pytest_crbench.bench.run.BenchSession` in
``pytest_configure`` and store it here; the collector hands it to its items and the
fixtures read it through :func:`bench_session`.  Nothing here imports the hooks, so
there is no import cycle between hooks, items and fixtures.
"""

from __future__ import annotations

import pytest

__all__ = ["SESSION_KEY", "bench_session"]

SESSION_KEY = pytest.StashKey["object"]()


def bench_session(config: pytest.Config, required: bool = True):
    """The run's BenchSession; None (or RuntimeError when ``required``) without --crbench."""
    bench = config.stash.get(SESSION_KEY, None)
    if bench is None and required:
        raise RuntimeError("pytest-crbench is not active: pass --crbench")
    return bench
