"""Star regions of a clean image (method.md section 3).

The background and its RMS come from SEP on the clean reference image (ignored pixels
masked; :func:`pytest_crbench.science.background.background`, the estimate star finding
uses too).  ``region_k`` is the set of connected pixel groups whose background-subtracted
value exceeds ``k × RMS``; groups smaller than ``min_area`` pixels (isolated noise peaks)
are dropped.  Because each group at a higher ``k`` lies inside a group at a lower ``k``
that is at least as large, the regions are nested: region_160 ⊆ … ⊆ region_3.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pytest_crbench._util import row_strips
from pytest_crbench.science.background import Background, background

__all__ = ["DEFAULT_KS", "DEFAULT_MIN_AREA", "region_name", "region_names", "region_map",
           "region_levels"]

#: The paper's thresholds.
DEFAULT_KS = (3, 5, 10, 20, 40, 80, 160)
#: Smallest connected group kept in a region (pixels).
DEFAULT_MIN_AREA = 5
#: Rows of the float64 excess made at a time (about a million pixels: faster than more).
_STRIP_ROWS = 256


def region_name(k: float | None) -> str:
    """``"full"`` for the whole image, else ``"k<k>"`` (``k3``, ``k5``, ``k2.5``)."""
    if k is None:
        return "full"
    return f"k{int(k)}" if float(k).is_integer() else f"k{k:g}"


def region_names(ks) -> list[str]:
    """The scored regions of thresholds ``ks``: ``["full", "k3", "k5", …]`` (k ascending)."""
    return ["full"] + [region_name(k) for k in sorted(ks)]


def region_map(clean: np.ndarray, ignore: np.ndarray | None = None,
               ks=DEFAULT_KS, *, min_area: int = DEFAULT_MIN_AREA,
               bkg: Background | None = None) -> np.ndarray:
    """Per pixel, the largest ``k`` whose region contains it (0 outside every region).

    Returns an int16 image: region ``k`` is ``rmap >= k`` (:func:`region_levels` numbers
    the nested regions of every pixel).
    """
    from scipy import ndimage

    ks = sorted(float(k) for k in ks)
    if any(k <= 0 for k in ks):
        raise ValueError(f"region thresholds k must be > 0, got {ks}")
    if any(not k.is_integer() for k in ks) or max(ks, default=0) > np.iinfo(np.int16).max:
        raise ValueError(f"region thresholds k must be integers up to 32767, got {ks}")
    if len(ks) > 255:
        raise ValueError(f"at most 255 region thresholds, got {len(ks)}")
    bkg = bkg or background(clean, ignore)
    clean = np.asarray(clean)
    if not ks:
        return np.zeros(clean.shape, np.int16)
    # bkg.level is a full-frame map made now: dropped before the labels are made
    exceeded = _thresholds_exceeded(clean, ignore, [k * bkg.rms for k in ks], bkg.level)
    out = np.zeros(clean.shape, np.int16)
    structure = np.ones((3, 3), bool)
    labels = np.empty(clean.shape, np.int32)  # one buffer for every k
    flat = out.reshape(-1)
    for j, k in enumerate(ks):
        above = exceeded > j
        n = ndimage.label(above, structure=structure, output=labels)
        if n == 0:
            continue
        # sizes and kept groups from the pixels above the threshold alone
        where = np.flatnonzero(above)
        group = labels.reshape(-1)[where]
        keep = np.bincount(group, minlength=n + 1) >= min_area
        flat[where[keep[group]]] = int(k)
    return out


def _thresholds_exceeded(clean: np.ndarray, ignore: np.ndarray | None, thresholds: list,
                         level: np.ndarray) -> np.ndarray:
    """Per pixel, how many ``thresholds`` (ascending) its float64 excess over the
    background ``level`` exceeds (uint8; 0 where ignored or NaN), one strip at a time.

    ``excess > k_j × rms`` for ascending k_j (rms >= 0) holds for the first thresholds
    and fails for the others, so "region k_j" is ``exceeded > j``: the same pixels as one
    threshold image per k."""
    exceeded = np.zeros(clean.shape, np.uint8)
    for rows in row_strips(clean.shape[0], _STRIP_ROWS):
        excess = np.asarray(clean[rows], np.float64) - np.asarray(level[rows], np.float64)
        n = exceeded[rows]
        for t in thresholds:
            n += excess > t
        if ignore is not None:
            n[np.asarray(ignore[rows], bool)] = 0
    return exceeded


@lru_cache(maxsize=16)
def _level_table(ks: tuple) -> np.ndarray:
    """:func:`region_levels` of every int16 value, indexed by the value's uint16 bits."""
    values = np.arange(1 << 16, dtype=np.uint16).view(np.int16)
    table = np.searchsorted(np.asarray(ks, np.float64), values, side="right").astype(np.uint8)
    table.flags.writeable = False
    return table


def region_levels(rmap: np.ndarray, ks=DEFAULT_KS) -> np.ndarray:
    """Per pixel of a :func:`region_map` (any shape), how many of the nested regions of
    thresholds ``ks`` hold it (uint8): 0 outside every region, ``j + 1`` inside the region
    of the ``j``-th smallest k but not of the next.  Region ``k_j`` is ``levels >= j + 1``.
    """
    ks = tuple(sorted(float(k) for k in ks))
    if len(ks) > 255:
        raise ValueError(f"at most 255 region thresholds, got {len(ks)}")
    rmap = np.asarray(rmap)
    if rmap.dtype == np.int16:  # what region_map gives: a look-up table of every value
        return np.take(_level_table(ks), rmap.view(np.uint16))
    return np.searchsorted(np.asarray(ks), rmap, side="right").astype(np.uint8)
