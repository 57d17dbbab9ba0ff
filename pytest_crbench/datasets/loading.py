"""Dataset names → :class:`~pytest_crbench.science.exposures.Dataset` objects.

Simulated presets (``sim``, ``sim-tiny``, ``sim-full``) are generated once into the data
cache by :mod:`pytest_crbench.datasets.simulate`; ``<preset>@seed=N`` is an independent
draw of the same preset (its own cache folder ``<preset>-seedN``; the plain name keeps the
preset's seed and data); real HST datasets come from the registry
through :mod:`pytest_crbench.datasets.real`.  Both are read back by the same FITS readers.
"""

from __future__ import annotations

from pathlib import Path

from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.exposures import Dataset

__all__ = ["available", "load_dataset", "is_scored", "domain_note"]


def available(data_dir: Path | None = None) -> dict[str, str]:
    """Every dataset name with a one-line description: the simulated presets, the
    package's real datasets and the user datasets of ``data_dir``'s groups file
    (``crbench data add --dataset``).  Reads only the groups files (nothing heavy)."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.catalog import load_groups
    from pytest_crbench.datasets.simulate import PRESETS

    names = {name: f"simulated HST ACS/WFC F606W groups ({name} preset)" for name in PRESETS}
    root = resolve_data_dir(data_dir) if data_dir is not None else None
    for name, ds in load_groups(root).datasets.items():
        names[name] = ds.description
    return names


def unknown_dataset(name: str, known, *, where: str = "--crbench-dataset") -> CRBenchConfigError:
    """The error for a dataset name that is not in ``known`` (with a did-you-mean)."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return CRBenchConfigError(
        f"{where}: unknown dataset {name!r}{hint} (available: {', '.join(sorted(known))}; "
        "add your own with `crbench data add FILE... --group G --dataset NAME`)")


def load_dataset(name: str, *, data_dir: Path | None = None, offline: bool = False,
                 lock_timeout: float | None = None, notify=None) -> Dataset:
    """Load dataset ``name`` from the cache (building or fetching it as allowed).

    ``name`` is a simulated preset, a dataset of the package groups file or a user
    dataset of the data folder's ``user_groups.toml``.  ``lock_timeout`` and ``notify``
    go to the cache lock (see :func:`pytest_crbench.datasets.cache.file_lock`).
    """
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.real import load_real_dataset
    from pytest_crbench.datasets.simulate import is_simulated, load_simulated

    root = resolve_data_dir(data_dir)
    check_dataset(name, data_dir=root)
    if is_simulated(name):
        return load_simulated(name, root, lock_timeout=lock_timeout, notify=notify)
    return load_real_dataset(name, data_dir=root, offline=offline,
                             lock_timeout=lock_timeout, notify=notify)


def check_dataset(name: str, *, data_dir: Path | None = None) -> None:
    """Raise :class:`CRBenchConfigError` (with a did-you-mean) unless :func:`load_dataset`
    knows ``name`` (a simulated preset, also as an independent draw ``sim@seed=N``, or a
    dataset of the groups files).  Reads only the groups files: cheap enough for start-up
    checks."""
    from pytest_crbench.datasets.simulate import is_simulated

    if is_simulated(name):
        return
    known = available(data_dir)
    if name not in known:
        raise unknown_dataset(name, known)


def is_scored(name: str, *, data_dir: Path | None = None) -> bool:
    """False for smoke-only datasets (single exposures: no reference can be built).

    Reads only the groups files (no FITS, nothing heavy); an unknown name counts as
    scored, and loading it later raises the error that names the known datasets.
    """
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.catalog import load_groups
    from pytest_crbench.datasets.simulate import is_simulated

    if is_simulated(name):
        return True
    try:
        groups = load_groups(resolve_data_dir(data_dir))
    except Exception:  # a broken groups file is reported when the dataset is loaded
        return True
    info = groups.datasets.get(name)
    return True if info is None else bool(info.scored)


def domain_note(detector, dataset: Dataset) -> str | None:
    """A sentence when ``dataset`` lies outside the instrument/detector a model was
    trained on (``detector.domain``, e.g. ``("ACS", "WFC")``), else None."""
    domain = getattr(detector, "domain", None)
    if not domain:
        return None
    seen = sorted({(e.instrument.upper(), e.detector.upper()) for _, e in dataset.exposures()})
    want = tuple(str(d).upper() for d in domain)
    outside = [f"{i}/{d}" for i, d in seen if (i, d)[: len(want)] != want]
    if not outside:
        return None
    return (f"{getattr(detector, 'name', detector)} was trained on {'/'.join(want)} data; "
            f"{dataset.name} is {', '.join(outside)}: out of the model's domain, so its "
            "scores test the data path and real cosmic-ray shapes, not the model's "
            "published performance")
