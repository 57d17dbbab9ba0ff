"""Dataset names → :class:`~pytest_crbench.science.exposures.Dataset` objects.

Simulated presets (``sim``, ``sim-tiny``, ``sim-full``, ``sim-csst``) are generated once
into the data cache by :mod:`pytest_crbench.datasets.simulate` (``sim-csst`` by its camera
simulator, :mod:`pytest_crbench.datasets.csst`); ``<preset>@seed=N`` is an independent
draw of the same preset (its own cache folder ``<preset>-seedN``; the plain name keeps the
preset's seed and data); real HST datasets come from the registry
through :mod:`pytest_crbench.datasets.real`.  Both are read back by the same FITS readers.
"""

from __future__ import annotations

from pathlib import Path

from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.exposures import Dataset, Group


def _presets() -> dict:
    """The simulated presets, with every camera simulator registered (``sim-csst``)."""
    from pytest_crbench.datasets import csst  # noqa: F401  (registers the CSST camera)
    from pytest_crbench.datasets.simulate import PRESETS

    return PRESETS


__all__ = ["available", "load_dataset", "check_dataset", "unknown_dataset", "dataset_layout",
           "load_group", "is_scored", "domain_note", "domain_note_for"]


def available(data_dir: Path | None = None) -> dict[str, str]:
    """Every dataset name with a one-line description: the simulated presets, the
    package's real datasets and the user datasets of ``data_dir``'s groups file
    (``crbench data add --dataset``).  Reads only the groups files (nothing heavy)."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.catalog import load_groups

    names = {name: f"simulated HST ACS/WFC F606W groups ({name} preset)"
             for name in _presets()}
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

    _presets()  # every camera simulator registered (sim-csst)
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


def dataset_layout(name: str, *, data_dir: Path | None = None, offline: bool = False,
                   lock_timeout: float | None = None, notify=None
                   ) -> tuple[Dataset, list[dict]]:
    """``name`` without its pixels where the layout is known from a manifest (simulated
    presets), else loaded: ``(dataset, groups)`` with ``groups`` = one dict per group
    (name, kind, date_obs, exposure names).  With a manifest ``dataset.groups`` is
    empty: load each group with :func:`load_group`."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.simulate import is_simulated, simulated_layout

    _presets()
    if is_simulated(name):
        return simulated_layout(name, resolve_data_dir(data_dir), lock_timeout=lock_timeout,
                                notify=notify)
    dataset = load_dataset(name, data_dir=data_dir, offline=offline,
                           lock_timeout=lock_timeout, notify=notify)
    return dataset, [{"name": g.name, "kind": g.kind, "date_obs": g.date_obs,
                      "exposures": [e.name for e in g.exposures]} for g in dataset.groups]


def load_group(name: str, index: int, *, data_dir: Path | None = None,
               offline: bool = False, focus: int | None = None,
               lock_timeout: float | None = None, notify=None) -> Group:
    """Group ``index`` of dataset ``name``: only its own files for simulated presets, and
    with ``focus`` only that exposure's pixels in memory (the others read row by row by
    the reference; see :func:`~pytest_crbench.datasets.simulate.load_simulated_group`)."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.simulate import is_simulated, load_simulated_group

    _presets()
    if is_simulated(name):
        return load_simulated_group(name, resolve_data_dir(data_dir), index, focus=focus,
                                    lock_timeout=lock_timeout, notify=notify)
    return load_dataset(name, data_dir=data_dir, offline=offline, lock_timeout=lock_timeout,
                        notify=notify).groups[index]


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
    seen = {(e.instrument, e.detector) for _, e in dataset.exposures()}
    return domain_note_for(getattr(detector, "name", detector), getattr(detector, "domain", None),
                           dataset.name, seen)


def domain_note_for(detector: str, domain, dataset: str, seen) -> str | None:
    """:func:`domain_note` from plain values: the detector's name and ``domain``, and the
    (instrument, detector) pairs ``seen`` in the dataset (what a distributed run has)."""
    if not domain:
        return None
    seen = sorted({(str(i).upper(), str(d).upper()) for i, d in seen})
    want = tuple(str(d).upper() for d in domain)
    outside = [f"{i}/{d}" for i, d in seen if (i, d)[: len(want)] != want]
    if not outside:
        return None
    return (f"{detector} was trained on {'/'.join(want)} data; "
            f"{dataset} is {', '.join(outside)}: out of the model's domain, so its "
            "scores test the data path and real cosmic-ray shapes, not the model's "
            "published performance")
