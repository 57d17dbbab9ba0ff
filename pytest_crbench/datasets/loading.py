"""Dataset names → :class:`~pytest_crbench.science.exposures.Dataset` objects.

Simulated presets (``sim``, ``sim-tiny``, ``sim-full``, ``sim-csst``) are generated once into the data
cache by :mod:`pytest_crbench.datasets.simulate`; real HST datasets come from the registry
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


def available() -> dict[str, str]:
    """Every dataset name with a one-line description."""
    from pytest_crbench.datasets.real import REAL_DATASETS

    names = {name: f"simulated HST ACS/WFC F606W groups ({name} preset)"
             for name in _presets()}
    for name, info in REAL_DATASETS.items():
        names[name] = info if isinstance(info, str) else str(info.get("description", name))
    return names


def load_dataset(name: str, *, data_dir: Path | None = None, offline: bool = False) -> Dataset:
    """Load dataset ``name`` from the cache (building or fetching it as allowed)."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.real import REAL_DATASETS, load_real_dataset
    from pytest_crbench.datasets.simulate import load_simulated
    presets = _presets()

    root = resolve_data_dir(data_dir)
    if name in presets:
        return load_simulated(name, root)
    if name in REAL_DATASETS:
        return load_real_dataset(name, data_dir=root, offline=offline)
    raise CRBenchConfigError(
        f"--crbench-dataset: unknown dataset {name!r}; available: {', '.join(sorted(available()))}"
    )


def dataset_layout(name: str, *, data_dir: Path | None = None, offline: bool = False
                   ) -> tuple[Dataset, list[dict]]:
    """``name`` without its pixels where the layout is known from a manifest (simulated
    presets), else loaded: ``(dataset, groups)`` with ``groups`` = one dict per group
    (name, kind, date_obs, exposure names).  With a manifest ``dataset.groups`` is
    empty: load each group with :func:`load_group`."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.simulate import simulated_layout
    presets = _presets()

    if name in presets:
        return simulated_layout(name, resolve_data_dir(data_dir))
    dataset = load_dataset(name, data_dir=data_dir, offline=offline)
    return dataset, [{"name": g.name, "kind": g.kind, "date_obs": g.date_obs,
                      "exposures": [e.name for e in g.exposures]} for g in dataset.groups]


def load_group(name: str, index: int, *, data_dir: Path | None = None,
               offline: bool = False, focus: int | None = None) -> Group:
    """Group ``index`` of dataset ``name``: only its own files for simulated presets, and
    with ``focus`` only that exposure's pixels in memory (the others read row by row by
    the reference; see :func:`~pytest_crbench.datasets.simulate.load_simulated_group`)."""
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.simulate import load_simulated_group
    presets = _presets()

    if name in presets:
        return load_simulated_group(name, resolve_data_dir(data_dir), index, focus=focus)
    return load_dataset(name, data_dir=data_dir, offline=offline).groups[index]


def is_scored(name: str, *, data_dir: Path | None = None) -> bool:
    """False for smoke-only datasets (single exposures: no reference can be built).

    Reads only the groups files (no FITS, nothing heavy); an unknown name counts as
    scored, and loading it later raises the error that names the known datasets.
    """
    from pytest_crbench.datasets.cache import data_dir as resolve_data_dir
    from pytest_crbench.datasets.catalog import load_groups
    presets = _presets()

    if name in presets:
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
