"""Dataset names → :class:`~pytest_crbench.model.Dataset` objects.

Simulated presets (``sim``, ``sim-tiny``, ``sim-full``) are generated once into the data
cache by :mod:`pytest_crbench.simulate`; real HST datasets come from the registry
through :mod:`pytest_crbench.realdata`.  Both are read back by the same FITS readers.
"""

from __future__ import annotations

from pathlib import Path

from .errors import CRBenchConfigError
from .model import Dataset


def available() -> dict[str, str]:
    """Every dataset name with a one-line description."""
    from .realdata import REAL_DATASETS
    from .simulate import PRESETS

    names = {name: f"simulated HST ACS/WFC F606W groups ({name} preset)" for name in PRESETS}
    for name, info in REAL_DATASETS.items():
        names[name] = info if isinstance(info, str) else str(info.get("description", name))
    return names


def load_dataset(name: str, *, data_dir: Path | None = None, offline: bool = False) -> Dataset:
    """Load dataset ``name`` from the cache (building or fetching it as allowed)."""
    from .cache import data_dir as resolve_data_dir
    from .realdata import REAL_DATASETS, load_real_dataset
    from .simulate import PRESETS, load_simulated

    root = resolve_data_dir(data_dir)
    if name in PRESETS:
        return load_simulated(name, root)
    if name in REAL_DATASETS:
        return load_real_dataset(name, data_dir=root, offline=offline)
    raise CRBenchConfigError(
        f"--crbench-dataset: unknown dataset {name!r}; available: {', '.join(sorted(available()))}"
    )
