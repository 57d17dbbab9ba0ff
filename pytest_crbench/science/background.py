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

from typing import Sequence

import numpy as np

from pytest_crbench._util import native
from pytest_crbench.errors import CRBenchDataError

__all__ = ["Background", "background_box", "background"]


class Background:
    """SEP background model of an image (e-).

    ``rms`` is the global background RMS.  The maps ``level`` and ``rms_map`` (float32,
    SEP's own precision) are made from the mesh at each reading, and the caller owns the
    array it gets; none is kept, so a Background held for an exposure costs only its
    mesh (an 85-Mpix chip: 0.34 GB per map).  A caller reads a map once into a name.
    """

    def __init__(self, model, rms: float) -> None:
        self._model = model
        self.rms = float(rms)
        self._maps: dict[str, np.ndarray] = {}

    @property
    def level(self) -> np.ndarray:
        """The background level map (made now)."""
        if self._model is None:
            return self._maps["level"].copy()
        return self._model.back(dtype=np.float32)

    @property
    def rms_map(self) -> np.ndarray:
        """The background noise map (made now)."""
        if self._model is None:
            return self._maps["rms_map"].copy()
        return self._model.rms(dtype=np.float32)

    def __getstate__(self) -> dict:
        # SEP's model does not pickle: a copy sent elsewhere (a Dask transfer) carries
        # the maps themselves
        return {"rms": self.rms, "level": self.level, "rms_map": self.rms_map}

    def __setstate__(self, state: dict) -> None:
        self.rms, self._model = state["rms"], None
        self._maps = {"level": state["level"], "rms_map": state["rms_map"]}


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

    # SEP computes in float32 whatever it is given: a float32 image is used as it is
    image = np.asarray(image)
    data = native(image, np.float32 if image.dtype == np.float32 else np.float64)
    mask = None if ignore is None else np.ascontiguousarray(ignore, dtype=bool)
    if mask is not None and mask.all():
        raise CRBenchDataError(
            f"{name}: every pixel is ignored (DQ != 0 or saturated); no background")
    box = background_box(data.shape) if box is None else int(box)
    try:
        bkg = sep.Background(data, mask=mask, bw=box, bh=box, fw=3, fh=3)
    except Exception as exc:  # sep raises plain Exceptions
        raise CRBenchDataError(f"{name}: sep could not estimate the background ({exc})") from None
    return Background(bkg, bkg.globalrms)
