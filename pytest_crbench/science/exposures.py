"""The data model: exposures, groups of exposures, datasets and reference products.

Everything here is plain numpy; images are always in electrons (e-), oriented as
stored in the FITS file (row = y, column = x).  An :class:`Exposure` is one CCD chip of
one exposure: a multi-chip file (ACS/WFC has two chips, WFPC2 four) becomes one
Exposure per chip, and a :class:`Group` collects the exposures of one chip of one field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_crbench._util import row_strips
from pytest_crbench.errors import CRBenchDataError

__all__ = ["DEFAULT_SATURATION", "Exposure", "GROUP_KINDS", "DQ_SATURATED", "Group",
           "Dataset", "Reference"]

#: Default saturation level in electrons (ACS/WFC full well, method.md section 1).
DEFAULT_SATURATION = 70000.0


@dataclass
class Exposure:
    """One chip of one exposure, in electrons.

    ``sci``/``err`` are float32 electron images, ``dq`` the data-quality bit mask
    (0 = good).  ``crtruth`` is the exact injected cosmic-ray charge (e-) where the data
    are simulated, else ``None``.  ``wcs_header`` holds the celestial WCS keywords of the
    chip, if any, so that dithered groups can be aligned.  ``source`` names the file and
    extension the data came from, for error messages.
    """

    name: str
    sci: np.ndarray
    dq: np.ndarray
    exptime: float
    err: np.ndarray | None = None
    crtruth: np.ndarray | None = None
    instrument: str = "UNKNOWN"
    detector: str = "UNKNOWN"
    filter: str = "UNKNOWN"
    date_obs: str = ""
    gain: float = 1.0
    read_noise: float = 5.0
    saturation: float = DEFAULT_SATURATION
    chip: int = 1
    wcs_header: dict[str, Any] | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.name
        sci = np.asarray(self.sci)
        if sci.ndim != 2:
            raise CRBenchDataError(f"{where}: SCI must be a 2-D image, got shape {sci.shape}")
        self.sci = np.asarray(sci, dtype=np.float32)
        for attr in ("dq", "err", "crtruth"):
            arr = getattr(self, attr)
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.shape != sci.shape:
                raise CRBenchDataError(
                    f"{where}: {attr.upper()} has shape {arr.shape} but SCI has shape {sci.shape}"
                )
            setattr(self, attr, arr)
        self.dq = np.asarray(self.dq).astype(np.int32, copy=False)
        if self.err is not None:
            self.err = np.asarray(self.err, dtype=np.float32)
        if self.crtruth is not None:
            self.crtruth = np.asarray(self.crtruth, dtype=np.float32)
        if not np.isfinite(self.exptime) or self.exptime <= 0:
            raise CRBenchDataError(f"{where}: exposure time must be > 0 s, got {self.exptime!r}")
        if not np.isfinite(self.saturation) or self.saturation <= 0:
            raise CRBenchDataError(
                f"{where}: saturation level (SATURATE) = {self.saturation!r} e- must be > 0: "
                "every pixel would count as saturated and the whole exposure be ignored")
        bad = ~np.isfinite(self.sci)
        if bad.any():
            n = int(bad.sum())
            raise CRBenchDataError(
                f"{where}: SCI has {n} NaN/inf pixel(s) (first at y,x="
                f"{tuple(int(v) for v in np.argwhere(bad)[0])}); flag them in DQ and set "
                "them to a finite value"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.sci.shape  # type: ignore[return-value]

    @property
    def bad_pixels(self) -> np.ndarray:
        """Pixels flagged in DQ (DQ != 0)."""
        return self.dq != 0

    @property
    def truth_mask(self) -> np.ndarray | None:
        """Boolean mask of pixels that received injected cosmic-ray charge, if known."""
        if self.crtruth is None:
            return None
        return self.crtruth > 0


#: How the exposures of a group relate: one pointing on one pixel grid, a CR-split pair,
#: or a dither pattern aligned through each exposure's WCS.
GROUP_KINDS = ("pointing", "crsplit", "dithered")
#: The HST data-quality bit of saturated pixels (full well, including bleed trails).
DQ_SATURATED = 256


@dataclass
class Group:
    """The exposures of one chip of one field (one pointing or one dither pattern).

    ``kind`` is ``"pointing"`` (same pointing, pixel-aligned), ``"crsplit"`` (a CR-split
    pair) or ``"dithered"`` (aligned through each exposure's WCS).
    """

    name: str
    exposures: list[Exposure]
    kind: str = "pointing"
    date_obs: str = ""

    def __post_init__(self) -> None:
        if not self.exposures:
            raise CRBenchDataError(f"group {self.name!r} has no exposures")
        if self.kind not in GROUP_KINDS:
            raise CRBenchDataError(
                f"group {self.name!r}: kind must be one of {', '.join(GROUP_KINDS)}, "
                f"got {self.kind!r}"
            )
        if self.kind != "dithered":
            shape = self.exposures[0].shape
            for exp in self.exposures[1:]:
                if exp.shape != shape:
                    raise CRBenchDataError(
                        f"group {self.name!r}: exposure {exp.name!r} has shape {exp.shape} "
                        f"but {self.exposures[0].name!r} has {shape}; exposures of one "
                        "pointing must share one pixel grid"
                    )
        if not self.date_obs:
            self.date_obs = min((e.date_obs for e in self.exposures if e.date_obs), default="")


#: An exposure whose signal level per second differs from the rest of its group by more
#: than this factor is refused (a wrong BUNIT, EXPTIME or a corrupted scaling: it would
#: bias the median reference of every other exposure of the group).
LEVEL_FACTOR = 100.0


def signal_level(exp: Exposure) -> float:
    """A robust signal level in e-/s: the 90th percentile of |SCI| over good pixels (on a
    sparse grid; positive even on a sky-subtracted image), divided by the exposure time."""
    ny, nx = exp.shape
    step = max(1, int(np.sqrt(ny * nx / 65536)))
    # every step-th row, then column (a lazily read exposure reads only those rows)
    sci = np.asarray(exp.sci[::step])[:, ::step]
    sample = np.abs(sci[np.asarray(exp.dq[::step])[:, ::step] == 0])
    return float(np.percentile(sample, 90)) / exp.exptime if sample.size else float("nan")


def _any_signal(sci) -> bool:
    """Whether an image (an array, or rows read on slicing as a lazily read exposure's)
    has a non-zero pixel; rows are read strip by strip, stopping at the first found."""
    if isinstance(sci, np.ndarray):
        return bool(sci.any())
    return any(np.asarray(sci[rows]).any() for rows in row_strips(sci.shape[0]))


def check_levels(group: "Group") -> None:
    """Refuse a group (before its reference is built) holding an exposure that is zero
    everywhere (an empty or failed readout) or whose level lies :data:`LEVEL_FACTOR` ×
    off the other exposures'."""
    for exp in group.exposures:
        if not _any_signal(exp.sci):
            raise CRBenchDataError(
                f"group {group.name!r}: exposure {exp.source or exp.name}: SCI is zero "
                "everywhere (an empty or failed readout): it would bias the reference of "
                "the other exposures; leave it out of the group")
    if len(group.exposures) < 2:
        return
    levels = np.array([signal_level(e) for e in group.exposures])
    ok = np.isfinite(levels) & (levels > 0)
    if ok.sum() < 2:
        return
    names = [e.source or e.name for e in group.exposures]
    if len(group.exposures) == 2:
        factor = float(max(levels) / min(levels))
        if factor > LEVEL_FACTOR:
            raise CRBenchDataError(
                f"group {group.name!r}: exposures {names[0]} ({levels[0]:.3g} e-/s) and "
                f"{names[1]} ({levels[1]:.3g} e-/s) differ in signal level by {factor:.3g}x; "
                "one would bias the reference of the other. Check their BUNIT and EXPTIME")
        return
    ref = float(np.median(levels[ok]))
    factors = np.where(ok, np.maximum(levels / ref, ref / np.where(ok, levels, 1)), 0)
    worst = int(np.argmax(factors))
    if factors[worst] > LEVEL_FACTOR:
        raise CRBenchDataError(
            f"group {group.name!r}: exposure {names[worst]} has a signal level of "
            f"{levels[worst]:.3g} e-/s, {factors[worst]:.3g}x off the median of its group "
            f"({ref:.3g} e-/s); it would bias the reference of the other exposures. Check "
            "its BUNIT and EXPTIME, or leave it out of the group")


@dataclass
class Dataset:
    """A named list of groups, with provenance (version, files and their hashes)."""

    name: str
    groups: list[Group]
    version: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def exposures(self):
        for group in self.groups:
            for exp in group.exposures:
                yield group, exp


@dataclass
class Reference:
    """Reference products of one group, one entry per exposure (same order).

    ``clean``: the cosmic-ray-free image (e-); ``crmask``: reference cosmic-ray mask;
    ``ignore``: pixels excluded from every score (DQ != 0 and the saturation boxes).
    """

    group: str
    clean: list[np.ndarray]
    crmask: list[np.ndarray]
    ignore: list[np.ndarray]
