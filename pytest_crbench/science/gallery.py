"""The failure gallery of method.md section 4: five stamps around a badly cleaned star.

Per star: the original exposure, original − clean (the true cosmic rays), the clean
reference, |clean − cleaned| (the detector's errors) and the detector-cleaned image,
all cut on the same pixel grid around the star.
"""

from __future__ import annotations

import numpy as np

from pytest_crbench.errors import CRBenchDataError

__all__ = ["STAMP_KEYS", "gallery_stamps"]

#: Keys of the five gallery stamps, in display order.
STAMP_KEYS = ("original", "original_minus_clean", "clean", "abs_clean_minus_cleaned",
              "cleaned")


def gallery_stamps(original: np.ndarray, clean: np.ndarray, cleaned: np.ndarray,
                   x: float, y: float, half: int = 10) -> dict[str, np.ndarray]:
    """Five (2·half+1)² stamps centred on pixel (round(x), round(y)), NaN off the image.

    Keys (in order): ``original``, ``original_minus_clean``, ``clean``,
    ``abs_clean_minus_cleaned``, ``cleaned``.
    """
    imgs = [np.asarray(a, dtype=float) for a in (original, clean, cleaned)]
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
