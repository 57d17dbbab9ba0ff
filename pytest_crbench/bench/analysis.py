"""Photometry, cosmic-ray density and stability of one detector on one dataset.

The orchestration of method.md sections 4–6 around :func:`pytest_crbench.bench.evaluation.evaluate`,
usable without pytest::

    prepared = prepare(dataset, ks)
    catalog = find_catalog(prepared)                     # stars, once per dataset
    collector = ExposurePhotometry(catalog, fill_method="idw")
    ev = evaluate(detector, prepared, on_exposure=collector)
    result = analyse(ev, prepared, collector, anomalous_level=0.1)

* **Stars** (:func:`find_catalog`): :func:`~pytest_crbench.science.photometry.find_group_stars`
  on the clean references of each group — independent of the detector, so found once per
  dataset.  A group in which no star passes the criteria is noted and left out.
* **Per exposure** (:class:`ExposurePhotometry`, the ``on_exposure`` callback): the
  detector-cleaned image — the detector's own ``Prediction.cleaned`` where it returns
  one, else :func:`~pytest_crbench.science.cleaning.cleaned_image` with the run's single
  ``fill_method`` — is measured with the same centres and apertures as the original and
  the clean reference, then dropped; only the photometry table and at most
  ``gallery_size`` stamp sets (the anomalous stars farthest from ratio 1) are kept.
* **Per dataset** (:func:`analyse`): the photometry summary, the density relation with
  its fits, the CR fraction per second and the exposure-time limits, and the per-group
  stability (F1/F2 of the smallest-k star region pooled over the group's exposures,
  trimmed RMS of the flux ratios) with leave-one-out 3σ-equivalent prediction intervals
  (:mod:`pytest_crbench.science.stability`).

:class:`Analysis` holds typed records (:mod:`pytest_crbench.bench.records`);
:meth:`Analysis.to_record` / :meth:`Analysis.from_record` carry it through JSON
(pytest-xdist workers send it to the controller that way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_crbench.bench.evaluation import Evaluation, PreparedDataset, PreparedExposure
from pytest_crbench.bench.records import (DensityAnalysis, DensityQuantity, ExposureLimit,
                                          GalleryEntry, PhotometrySummary, StabilityAnalysis)
from pytest_crbench.errors import CRBenchDataError, CRBenchError
from pytest_crbench.science.photometry import PhotometryConfig

__all__ = ["StarCatalog", "find_catalog", "add_group_stars", "finish_catalog", "ExposurePhotometry", "Analysis", "analyse",
           "GALLERY_SIZE", "STAMP_HALF"]

#: gallery stamps kept per (detector, dataset): the worst anomalous stars
GALLERY_SIZE = 6
STAMP_HALF = 10


# --------------------------------------------------------------------------- stars

@dataclass
class StarCatalog:
    """Stars of every exposure of a prepared dataset (keys: (group, exposure))."""

    stars: dict[tuple[str, str], np.ndarray]
    config: PhotometryConfig
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # no group has a star: photometry is impossible

    def get(self, pe: PreparedExposure) -> np.ndarray | None:
        return self.stars.get((pe.group.name, pe.exposure.name))


def find_catalog(prepared: PreparedDataset, config: PhotometryConfig | None = None
                 ) -> StarCatalog:
    """Find and match the stars of each group on its clean references."""
    from pytest_crbench.science.photometry import find_stars, star_list_name

    config = config or PhotometryConfig()
    by_group: dict[str, list[PreparedExposure]] = {}
    for pe in prepared.exposures:
        by_group.setdefault(pe.group.name, []).append(pe)
    catalog = StarCatalog({}, config)
    for name, pes in by_group.items():
        lists = []
        for pe in pes:
            try:
                lists.append(find_stars(pe.clean, pe.ignore, config,
                                        name=star_list_name(name, pe.exposure.name),
                                        bkg=pe.background))
            except CRBenchDataError as exc:
                lists.append(exc)
                break  # as find_group_stars: the first exposure without stars decides
        add_group_stars(catalog, pes[0].group, [pe.exposure for pe in pes], lists)
    return finish_catalog(catalog, prepared.dataset.name)


def add_group_stars(catalog: StarCatalog, group, exposures, lists: list) -> None:
    """Match one group's star lists (:func:`find_stars` results, or the error of the
    first exposure without stars) into ``catalog``, or note why the group is left out.
    The one place where a serial and a distributed run assemble the catalog."""
    from pytest_crbench.science.photometry import harmonise_group_stars

    names = [e.name for e in exposures]
    headers = [e.wcs_header for e in exposures] if group.kind == "dithered" else None
    try:
        for item in lists:
            if isinstance(item, BaseException):
                raise item
        harmonised = harmonise_group_stars(lists, catalog.config, group=group.name,
                                           names=names, wcs_headers=headers)
    except CRBenchDataError as exc:
        catalog.notes.append(f"group {group.name!r} left out of the photometry: {exc}")
        return
    for nm, stars in zip(names, harmonised):
        catalog.stars[(group.name, nm)] = stars


def finish_catalog(catalog: StarCatalog, dataset: str) -> StarCatalog:
    if not catalog.stars:
        catalog.error = (f"dataset {dataset!r}: no star found in any group, so "
                         "no photometry: " + "; ".join(catalog.notes))
    return catalog


# --------------------------------------------------------------------------- per exposure

class ExposurePhotometry:
    """The ``on_exposure`` callback of :func:`evaluate`: photometry and gallery stamps."""

    def __init__(self, catalog: StarCatalog, *, fill_method: str = "idw",
                 gallery_size: int = GALLERY_SIZE, stamp_half: int = STAMP_HALF):
        self.catalog = catalog
        self.fill_method = fill_method
        self.gallery_size = int(gallery_size)
        self.stamp_half = int(stamp_half)
        self.records: list[dict[str, Any]] = []  # one per exposure (density input)
        self.gallery: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.cleaned_by_detector = 0

    def __call__(self, pe: PreparedExposure, pred) -> None:
        self.add(self.measure(pe, pred, self.catalog.get(pe)))

    def measure(self, pe: PreparedExposure, pred, stars: np.ndarray | None) -> dict[str, Any]:
        """Photometry of one exposure and its gallery candidates: a small record (no
        image), computed where the exposure lies (a Dask worker in distributed runs)."""
        from pytest_crbench.science.cleaning import cleaned_image
        from pytest_crbench.science.photometry import PHOT_DTYPE, measure_stars

        record = {"group": pe.group.name, "exposure": pe.exposure.name,
                  "exptime": float(pe.exposure.exptime), "cr_fraction": pe.cr_fraction,
                  "date": pe.group.date_obs, "stars": np.zeros(0, dtype=PHOT_DTYPE)}
        out = {"record": record, "gallery": [], "note": None, "cleaned": False}
        if stars is None or len(stars) == 0:
            return out
        try:
            cleaned = cleaned_image(pe.exposure.sci, pred.mask, pred.cleaned, pe.ignore,
                                    method=self.fill_method)
            table = measure_stars(pe.exposure.sci, pe.clean, cleaned, pe.exposure.err,
                                  pe.ignore, stars, self.catalog.config,
                                  exposure=pe.exposure.name, bkg=pe.background)
        except CRBenchError as exc:
            out["note"] = f"exposure {pe.exposure.name!r}: photometry failed: {exc}"
            return out
        out["cleaned"] = pred.cleaned is not None
        record["stars"] = table
        out["gallery"] = self._gallery(pe, cleaned, table, [])
        return out

    def add(self, outcome: dict[str, Any]) -> None:
        """Merge one :meth:`measure` result (in exposure order)."""
        self.records.append(outcome["record"])
        if outcome["note"]:
            self.notes.append(outcome["note"])
        self.cleaned_by_detector += bool(outcome["cleaned"])
        for entry in outcome["gallery"]:
            self._keep(self.gallery, entry)

    def _keep(self, gallery: list, entry: dict) -> bool:
        """Insert ``entry`` if it is among the ``gallery_size`` worst; False when full
        and not worse than the last (ties keep the earlier entry)."""
        if len(gallery) >= self.gallery_size and entry["_dev"] <= gallery[-1]["_dev"]:
            return False
        gallery.append(entry)
        gallery.sort(key=lambda e: -e["_dev"])
        del gallery[self.gallery_size:]
        return True

    def _gallery(self, pe: PreparedExposure, cleaned: np.ndarray, table: np.ndarray,
                 gallery: list) -> list:
        """The ``gallery_size`` worst stars of this exposure (worst first), with stamps."""
        from pytest_crbench.science.gallery import gallery_stamps, ratio_deviation, worst_stars

        if self.gallery_size <= 0:
            return gallery
        for row in worst_stars(table, self.gallery_size):
            dev = float(ratio_deviation(row["ratio_cleaned"]))
            if len(gallery) >= self.gallery_size and dev <= gallery[-1]["_dev"]:
                break  # rows come worst first, by the same deviation: none later qualifies
            stamps = gallery_stamps(pe.exposure.sci, pe.clean, cleaned, float(row["x"]),
                                    float(row["y"]), half=self.stamp_half)
            self._keep(gallery, {
                "_dev": dev, "group": pe.group.name, "exposure": pe.exposure.name,
                "star_id": int(row["star_id"]), "x": float(row["x"]), "y": float(row["y"]),
                "radius": float(row["radius"]), "area": int(row["area"]),
                "ratio_cleaned": _finite(row["ratio_cleaned"]),
                "ratio_original": _finite(row["ratio_original"]),
                "stamps": {k: v.tolist() for k, v in stamps.items()}})
        return gallery


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- per dataset

@dataclass
class Analysis:
    """Photometry, density and stability of one detector on one dataset."""

    detector: str
    dataset: str
    stars: list[dict[str, Any]] = field(default_factory=list)  # one row per star image
    photometry: PhotometrySummary | None = None
    density: DensityAnalysis | None = None
    stability: StabilityAnalysis | None = None
    gallery: list[GalleryEntry] = field(default_factory=list)
    fill_method: str = ""
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # photometry impossible (no star in any group)

    def to_record(self) -> dict[str, Any]:
        return {"detector": self.detector, "dataset": self.dataset, "stars": self.stars,
                "photometry": None if self.photometry is None else self.photometry.to_record(),
                "density": None if self.density is None else self.density.to_record(),
                "stability": None if self.stability is None else self.stability.to_record(),
                "gallery": [g.to_record() for g in self.gallery],
                "fill_method": self.fill_method, "notes": list(self.notes),
                "error": self.error}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Analysis":
        def opt(kind, value):
            return None if value is None else kind.from_record(value)

        return cls(record["detector"], record["dataset"], list(record.get("stars", [])),
                   opt(PhotometrySummary, record.get("photometry")),
                   opt(DensityAnalysis, record.get("density")),
                   opt(StabilityAnalysis, record.get("stability")),
                   [GalleryEntry.from_record(g) for g in record.get("gallery", [])],
                   record.get("fill_method", ""), list(record.get("notes", [])),
                   record.get("error"))

    def summary_block(self, size_bin: str = "all"):
        """The :class:`~pytest_crbench.bench.records.PhotometryBlock` of ``size_bin``
        ("all" or a bin label); None without photometry or for an unknown bin."""
        return None if self.photometry is None else self.photometry.block(size_bin)


def _density(records: list[dict], labels: list[str], level: float) -> DensityAnalysis:
    from pytest_crbench.science.density import (cr_fraction_per_second, density_relation,
                                                max_exposure_time)

    relation = {q: DensityQuantity.from_record(e)
                for q, e in density_relation(records, labels).items()}
    rate = cr_fraction_per_second(records)
    limits = []
    for q in ["anomalous"] + [f"anomalous_{b}" for b in labels]:
        fit = relation[q].fit
        seconds = max_exposure_time(fit, rate, level)
        note = relation[q].reason
        if fit is not None and seconds is not None and rate and fit.x_max == fit.x_max \
                and seconds * rate > fit.x_max:
            note = (f"extrapolated beyond the densest exposure ({100 * fit.x_max:.1f} % "
                    "CR pixels)")
        limits.append(ExposureLimit(q, level, seconds, note))
    return DensityAnalysis(relation, rate, level, limits)


def _stability(ev: Evaluation, prepared: PreparedDataset,
               records: list[dict]) -> StabilityAnalysis:
    from pytest_crbench.science.regions import region_name
    from pytest_crbench.science.stability import group_stability

    region = region_name(min(prepared.ks))
    groups: dict[str, dict[str, Any]] = {}
    dates = {rec["group"]: rec["date"] for rec in records}
    for er in ev.exposures:
        g = groups.setdefault(er.group, {"group": er.group, "date": dates.get(er.group, ""),
                                         "tp": 0, "fp": 0, "fn": 0, "ratios": []})
        c = er.counts[region]
        g["tp"] += c.tp
        g["fp"] += c.fp
        g["fn"] += c.fn
    for rec in records:
        if rec["group"] in groups and len(rec["stars"]):
            groups[rec["group"]]["ratios"].extend(
                float(r) for r in rec["stars"]["ratio_cleaned"])
    out = group_stability(list(groups.values()), exclude_self=True)
    return StabilityAnalysis.from_record({**out, "region": region})


def analyse(ev: Evaluation, prepared: PreparedDataset, collector: ExposurePhotometry, *,
            anomalous_level: float = 0.1) -> Analysis:
    """Photometry summary, density relation and stability bands of ``ev``."""
    from pytest_crbench.science.photometry_summary import (concatenate, photometry_summary,
                                                          stars_to_rows)

    config = collector.catalog.config
    result = Analysis(ev.detector, ev.dataset, fill_method=collector.fill_method,
                      notes=list(collector.catalog.notes) + list(collector.notes),
                      error=collector.catalog.error)
    records = collector.records
    if result.error is None:
        for rec in records:
            for row in stars_to_rows(rec["stars"]):
                result.stars.append({"detector": ev.detector, "dataset": ev.dataset,
                                     "group": rec["group"], **row})
        table = concatenate(rec["stars"] for rec in records)
        result.photometry = PhotometrySummary.from_record(photometry_summary(table, config))
        try:
            result.density = _density(records, config.bin_labels(), anomalous_level)
        except CRBenchDataError as exc:
            result.notes.append(f"CR density: {exc}")
        result.gallery = [GalleryEntry.from_record(e) for e in collector.gallery]
        if collector.cleaned_by_detector:
            result.fill_method = "detector's own cleaned image"
    result.stability = _stability(ev, prepared, records)
    return result
