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
    bkg = bkg or background(clean, ignore)
    clean = np.asarray(clean)
    out = np.zeros(clean.shape, np.int16)
    if not ks:
        return out
    # how many thresholds each pixel exceeds, from one float64 excess per strip of rows:
    # pixel > k_j x rms  <=>  more than j thresholds lie below it
    thresholds = np.array([k * bkg.rms for k in ks])
    exceeded = np.zeros(clean.shape, np.uint8)
    level = bkg.level
    for rows in row_strips(clean.shape[0]):
        excess = np.asarray(clean[rows], np.float64) - level[rows]
        n = np.searchsorted(thresholds, excess, side="left").astype(np.uint8)
        n[np.isnan(excess)] = 0  # NaN exceeds nothing (it would sort after every k)
        if ignore is not None:
            n[np.asarray(ignore[rows], bool)] = 0
        exceeded[rows] = n
    del level  # (a full-frame float32 map) before the labels are made
    structure = np.ones((3, 3), bool)
    for j, k in enumerate(ks):
        labels, n = ndimage.label(exceeded > j, structure=structure)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_area
        keep[0] = False
        out[keep[labels]] = int(k)
    return out


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
