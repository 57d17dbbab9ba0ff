"""The failure gallery of method.md section 4: the worst stars and their five stamps.

The worst stars are the anomalous ones whose flux ratio F_cleaned/F_clean is farthest
from 1 in the sense of :func:`ratio_deviation`, |log ratio| (a star that lost half its
light counts as badly as one that doubled; a non-finite ratio counts as the worst).
Per star five stamps: the original exposure, original − clean (the true cosmic rays),
the clean reference, |clean − cleaned| (the detector's errors) and the detector-cleaned
image, all cut on the same pixel grid around the star.
"""

from __future__ import annotations

import numpy as np

from pytest_crbench.errors import CRBenchDataError

__all__ = ["STAMP_KEYS", "ratio_deviation", "worst_stars", "gallery_stamps"]

#: Keys of the five gallery stamps, in display order.
STAMP_KEYS = ("original", "original_minus_clean", "clean", "abs_clean_minus_cleaned",
              "cleaned")


def ratio_deviation(ratio) -> np.ndarray:
    """How far flux ratios are from 1: |log ratio| (ratios clipped at 1e-6), inf where
    the ratio is not finite.  The one definition of "worst" for the gallery."""
    ratio = np.asarray(ratio, dtype=float)
    with np.errstate(invalid="ignore"):
        dev = np.abs(np.log(np.clip(ratio, 1e-6, None)))
    return np.where(np.isfinite(ratio), dev, np.inf)


def worst_stars(stars: np.ndarray, n: int = 8) -> np.ndarray:
    """The ``n`` anomalous stars of a photometry table with the largest
    :func:`ratio_deviation` (worst first; ties keep table order)."""
    stars = np.asarray(stars)
    if len(stars) == 0:
        return stars
    dev = ratio_deviation(stars["ratio_cleaned"])
    sel = np.nonzero(stars["anomalous"])[0]
    order = sel[np.argsort(-dev[sel], kind="stable")]
    return stars[order[:n]]


def gallery_stamps(original: np.ndarray, clean: np.ndarray, cleaned: np.ndarray,
                   x: float, y: float, half: int = 10) -> dict[str, np.ndarray]:
    """Five (2·half+1)² stamps centred on pixel (round(x), round(y)), NaN off the image.

    Keys (in order): ``original``, ``original_minus_clean``, ``clean``,
    ``abs_clean_minus_cleaned``, ``cleaned``.
    """
    imgs = [np.asarray(a) for a in (original, clean, cleaned)]  # cut first, then float
    shape = imgs[0].shape
    if any(a.shape != shape for a in imgs) or len(shape) != 2:
        raise CRBenchDataError(
            f"gallery_stamps: the three images must be 2-D with one shape, got "
            f"{[a.shape for a in imgs]}")
    if half < 1:
        raise CRBenchDataError(f"gallery_stamps: half must be >= 1, got {half}")
    cx, cy = int(round(x)), int(round(y))
    ny, nx = shape
    if not (0 <= cx < nx and 0 <= cy < ny):
        raise CRBenchDataError(f"gallery_stamps: centre ({x:g}, {y:g}) is off the "
                               f"{nx}x{ny} image")
    size = 2 * half + 1

    def cut(a):
        out = np.full((size, size), np.nan)
        y0, y1 = max(cy - half, 0), min(cy + half + 1, ny)
        x0, x1 = max(cx - half, 0), min(cx + half + 1, nx)
        out[y0 - (cy - half):y1 - (cy - half), x0 - (cx - half):x1 - (cx - half)] = \
            a[y0:y1, x0:x1]
        return out

    o, c, d = (cut(a) for a in imgs)
    return {"original": o, "original_minus_clean": o - c, "clean": c,
            "abs_clean_minus_cleaned": np.abs(c - d), "cleaned": d}
