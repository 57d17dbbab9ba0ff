"""Datasets of real HST frames: groups file + registry + cache + loaders → :class:`Dataset`.

``REAL_DATASETS`` names the datasets of the package groups file (``data/groups.toml``):

* ``stis-crsplit`` — the gate dataset: six STIS/CCD CR-SPLIT pairs (``Group.kind ==
  "crsplit"``), scored against the pair reference.  ``o56502010`` is excluded (its imsets
  differ ~4× in background rate).
* ``wfpc2-smoke``, ``hrc-smoke`` — single exposures: no reference can be built from one
  exposure, so they are *smoke only*: loaded and run through the detectors, never scored
  (``Dataset.provenance["scored"] is False``).

User datasets (``crbench data add --group … --dataset …``) are found too, through the
user groups file of the data folder.
"""

from __future__ import annotations

from pathlib import Path

from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.science.exposures import Dataset, Group

__all__ = ["REAL_DATASETS", "dataset_files", "load_real_dataset"]


def _package_datasets() -> dict[str, str]:
    try:
        from pytest_crbench.datasets.catalog import load_groups

        groups = load_groups(None)
    except Exception:  # pragma: no cover - a broken install reports on use, not on import
        return {}
    return {name: ds.description for name, ds in groups.datasets.items()}


#: Dataset name → description (package datasets).
REAL_DATASETS: dict[str, str] = _package_datasets()


def dataset_files(name: str, *, data_dir: Path | None = None) -> list[str]:
    """Every file (loaded and extra) of dataset ``name``."""
    from pytest_crbench.datasets.catalog import load_groups

    groups = load_groups(data_dir)
    if name not in groups.datasets:
        raise CRBenchConfigError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(groups.datasets))}")
    return groups.dataset_files(name)


def load_real_dataset(name: str, *, data_dir: Path, offline: bool, progress: bool = True,
                      lock_timeout: float | None = None, notify=None) -> Dataset:
    """Fetch (or find in the cache) and load real dataset ``name``.

    Returns a :class:`Dataset` of groups of Exposures in electrons.  ``provenance`` holds
    ``files`` ({name: sha256}), ``urls``, ``scored`` (False for smoke datasets),
    ``smoke_only``, ``description``, ``groups`` ({group: {kind, instrument, files}}),
    ``excluded`` (unusable groups of the file with their reason) and ``data_dir``.
    Missing files raise :class:`~pytest_crbench.errors.CRBenchMissingDataError` listing
    them and the fetch/seed commands — never a silent skip.
    """
    from pytest_crbench.datasets.cache import fetch
    from pytest_crbench.datasets.hst import load_product
    from pytest_crbench.datasets.catalog import load_groups, load_registry

    data_dir = Path(data_dir)
    registry = load_registry(data_dir)
    groups = load_groups(data_dir, registry=registry)
    if name not in groups.datasets:
        raise CRBenchConfigError(
            f"unknown real dataset {name!r}; known: {', '.join(sorted(groups.datasets))}")
    spec = groups.datasets[name]
    files = groups.dataset_files(name)
    paths = fetch(files, data_dir=data_dir, offline=offline, progress=progress,
                  registry=registry, dataset=name, lock_timeout=lock_timeout, notify=notify)
    out_groups: list[Group] = []
    for gname in spec.groups:
        g = groups.groups[gname]
        exposures = []
        for fname in g.files:
            loaded = load_product(paths[fname], loader=g.loader)
            if g.chips is not None:
                keep = [e for e in loaded
                        if (e.meta.get("imset") or e.chip) in g.chips]
                if not keep:
                    raise CRBenchDataError(
                        f"{g.source}: chips {g.chips} select nothing from {fname}")
                loaded = keep
            exposures.extend(loaded)
        if g.kind == "crsplit" and len(exposures) < 2:
            raise CRBenchDataError(
                f"{g.source}: a crsplit group needs at least 2 imsets, {g.files} hold "
                f"{len(exposures)}")
        if g.kind != "crsplit" and len(g.files) == 1 and len({e.chip for e in exposures}) > 1:
            # One file with several chips (WFPC2 c0f): one group per chip (Group = one chip).
            for chip in sorted({e.chip for e in exposures}):
                members = [e for e in exposures if e.chip == chip]
                out_groups.append(Group(name=f"{gname}[{chip}]", exposures=members,
                                        kind=g.kind, date_obs=min(g.date_obs, default="")))
            continue
        out_groups.append(Group(name=gname, exposures=exposures, kind=g.kind,
                                date_obs=min(g.date_obs, default="")))
    provenance = {
        "description": spec.description,
        "scored": spec.scored,
        "smoke_only": not spec.scored,
        "files": {f: registry[f].sha256 for f in files},
        "urls": {f: registry[f].url for f in files},
        "groups": {gn: {"kind": groups.groups[gn].kind,
                        "instrument": groups.groups[gn].instrument,
                        "files": groups.groups[gn].files} for gn in spec.groups},
        "excluded": {gn: g.reason for gn, g in groups.groups.items()
                     if not g.usable and set(g.files) & set(
                         f for m in spec.groups for f in groups.groups[m].files) == set()
                     and g.loader in {groups.groups[m].loader for m in spec.groups}},
        "groups_file": groups.sources,
        "data_dir": str(data_dir),
        "real": True,
    }
    return Dataset(name=name, groups=out_groups, version=spec.version, provenance=provenance)
