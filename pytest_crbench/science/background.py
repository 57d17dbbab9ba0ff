"""The sky background of an image: one SEP estimate, one box rule, for every use.

Star regions (method.md section 3: pixels above k × the background RMS of the clean
reference) and star finding and photometry (section 4: pixels above 3 × the background
noise; fluxes measured above the clean reference's background) read the background of
an image from :func:`background`, so they see the same background of the same image.
It is cheap (about 0.02 s for a 2048² image) and deterministic, so it is recomputed
where needed rather than kept for every exposure of a dataset.

The background mesh is ``box`` pixels square (default :func:`background_box`: 64 px,
shrunk to a quarter of the shorter side for small images but never below 16 px), median
filtered over 3 × 3 meshes (SEP's default); ignored pixels are masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pytest_crbench._util import native
from pytest_crbench.errors import CRBenchDataError

__all__ = ["Background", "background_box", "background"]


@dataclass
class Background:
    """SEP background model of an image (e-)."""

    level: np.ndarray  # background level map
    rms_map: np.ndarray  # background noise map
    rms: float  # global background RMS


def background_box(shape: Sequence[int]) -> int:
    """The mesh size (px) for an image of ``shape``: min(64, max(16, shorter side // 4))."""
    return int(min(64, max(16, min(shape) // 4)))


def background(image: np.ndarray, ignore: np.ndarray | None = None, *,
               box: int | None = None, name: str = "image") -> Background:
    """SEP background of ``image`` with ``ignore`` masked (``box`` None: the default rule).

    Raises :class:`~pytest_crbench.errors.CRBenchDataError` naming ``name`` when every
    pixel is ignored or SEP fails.
    """
    import sep

    data = native(image, np.float64)
    mask = None if ignore is None else np.ascontiguousarray(ignore, dtype=bool)
    if mask is not None and mask.all():
        raise CRBenchDataError(
            f"{name}: every pixel is ignored (DQ != 0 or saturated); no background")
    box = background_box(data.shape) if box is None else int(box)
    try:
        bkg = sep.Background(data, mask=mask, bw=box, bh=box, fw=3, fh=3)
    except Exception as exc:  # sep raises plain Exceptions
        raise CRBenchDataError(f"{name}: sep could not estimate the background ({exc})") from None
    return Background(level=bkg.back(), rms_map=bkg.rms(), rms=float(bkg.globalrms))
