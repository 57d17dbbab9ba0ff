"""The histogram method of Pych (2004) as a pytest-crbench detector.

Source: W. Pych, "A fast algorithm for cosmic-ray removal from single images",
PASP 116, 148 (2004), doi:10.1086/381786.  The seed paper of this project lists it with
Rhoads (2000) as the classical single-image references.

Pych's idea: in a small piece of an image, the values of the pixels untouched by cosmic
rays form one continuous histogram (sky noise plus the smooth light of objects); the
pixels of a cosmic-ray hit lie above it, separated by an empty gap.  No model of the
object or of the noise is needed.  This implementation (numbers are its choices):

1. The image is covered by square boxes of ``box`` pixels (default 24), placed every
   ``box/2`` pixels in both directions, so every pixel lies in up to four boxes and a
   hit near a box edge is seen whole by one of them.
2. In each box, from the usable pixels (not ignored, not yet flagged): the median
   (the histogram's peak for a sky-dominated box) and the standard deviation ``s``.
   The values above the median are sorted; the first step between consecutive values
   wider than ``gap · s`` (default ``gap = 8``) is the histogram gap, and every pixel
   above it is a candidate.  Using the box's own ``s`` is the method's safeguard for
   objects: a star inflates ``s``, so the sparse values of its core do not open a gap
   as easily as a lone hit on the sky does.  For a point source the widest gap is
   about ``(P₀ − P₁)/sqrt(ΣP²/box²)`` standard deviations (``P₀``, ``P₁``: the
   fractions of its flux in its peak pixel and the next one), which grows with the box;
   for a hit of ``L`` equal pixels it is about ``box/sqrt(L)``.  24 and 8 were chosen
   on synthetic scenes with FWHM-2-px stars (most star pixels untouched, most isolated
   hits found).  The price, measured on ``sim``: where hits crowd every box (CR
   densities of several per cent), they inflate ``s`` themselves and most are missed.
3. A pixel is flagged when it is a candidate in at least ``votes`` of the boxes that
   contain it and were evaluated (default 1: any).
4. As Pych does for multi-pixel hits, detection is repeated ``niter`` times (default
   3): flagged pixels are replaced by the median of their unflagged 5×5 neighbours, so
   the fainter pixels of a hit (its charge-diffusion wings) open their own gap in the
   next pass.

Boxes with fewer than ``min_pixels`` usable pixels (default 64) are skipped.  Ignored
pixels are never flagged.  Deterministic; numpy only.  Spec: ``pych`` or
``pych:box=24,gap=4,niter=2,votes=2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_crbench.detectors.base import Prediction, parse_options
from pytest_crbench.errors import CRBenchDetectorError

__all__ = ["DEFAULTS", "PychDetector", "box_candidates", "make_detector"]

DEFAULTS: dict[str, Any] = {"box": 24, "gap": 8.0, "niter": 3, "votes": 1, "min_pixels": 64}
_TYPES = {"box": int, "gap": float, "niter": int, "votes": int, "min_pixels": int}


def box_candidates(values: np.ndarray, gap: float) -> float | None:
    """The value above the first histogram gap of ``values`` (1-D, finite), or None.

    The gap is the first step wider than ``gap × std(values)`` between consecutive
    sorted values at or above the median.
    """
    if values.size < 2:
        return None
    s = float(values.std())
    if s <= 0:
        return None
    v = np.sort(values)
    upper = v[v.size // 2:]
    steps = np.diff(upper)
    wide = np.nonzero(steps > gap * s)[0]
    if wide.size == 0:
        return None
    return float(upper[wide[0] + 1])


class PychDetector:
    """Pych's (2004) histogram-gap cosmic-ray finder; returns a boolean mask."""

    threshold = None

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise CRBenchDetectorError(
                f"pych: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}")
        self.params = dict(DEFAULTS)
        for k, v in params.items():
            try:
                self.params[k] = _TYPES[k](v)
            except (TypeError, ValueError):
                raise CRBenchDetectorError(
                    f"pych: {k} must be a {_TYPES[k].__name__}, got {v!r}") from None
        p = self.params
        if p["box"] < 8 or p["box"] % 2 or p["gap"] <= 0 or p["niter"] < 1 \
                or not 1 <= p["votes"] <= 4 or p["min_pixels"] < 2:
            raise CRBenchDetectorError(
                "pych: need an even box >= 8, gap > 0, niter >= 1, votes from 1 to 4, "
                f"min_pixels >= 2; got {p}")
        changed = {k: self.params[k] for k in sorted(params)}
        self.name = "pych" + (":" + ",".join(f"{k}={v}" for k, v in changed.items())
                              if changed else "")
        self.version = "pych-2004 numpy " + " ".join(f"{k}={v}" for k, v in p.items())

    def __repr__(self) -> str:
        return f"PychDetector({self.params!r})"

    def _pass(self, image: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """One detection pass: votes per pixel over the half-overlapping boxes."""
        p = self.params
        b, step = p["box"], p["box"] // 2
        h, w = image.shape
        votes = np.zeros(image.shape, np.int8)
        ys = list(range(0, max(h - b, 0) + 1, step))
        xs = list(range(0, max(w - b, 0) + 1, step))
        if ys[-1] + b < h:
            ys.append(h - b if h >= b else 0)
        if xs[-1] + b < w:
            xs.append(w - b if w >= b else 0)
        for y0 in ys:
            for x0 in xs:
                sub = image[y0:y0 + b, x0:x0 + b]
                ok = usable[y0:y0 + b, x0:x0 + b]
                vals = sub[ok]
                if vals.size < p["min_pixels"]:
                    continue
                cut = box_candidates(vals, p["gap"])
                if cut is not None:
                    votes[y0:y0 + b, x0:x0 + b] += (sub >= cut) & ok
        return votes >= p["votes"]

    def detect(self, image: np.ndarray, ignore: np.ndarray | None = None,
               exposure: Any = None) -> Prediction:
        from pytest_crbench.science.cleaning import fill_masked

        img = np.asarray(image, dtype=np.float64)
        if img.ndim != 2:
            raise CRBenchDetectorError(f"{self.name}: image must be 2-D, got shape {img.shape}")
        ignore = np.zeros(img.shape, bool) if ignore is None else np.asarray(ignore, bool)
        finite = np.isfinite(img)
        work = np.where(finite, img, 0.0)
        mask = np.zeros(img.shape, bool)
        for _ in range(self.params["niter"]):
            new = self._pass(work, finite & ~ignore & ~mask) & ~mask
            if not new.any():
                break
            mask |= new
            work = fill_masked(work, mask | ~finite)
        return Prediction(mask=mask & ~ignore)


def make_detector(spec: str = "", **options: Any) -> PychDetector:
    """Factory: ``spec`` is what follows ``pych:`` (``threshold``/``device`` ignored:
    a binary, CPU-only detector)."""
    options.pop("device", None)
    options.pop("threshold", None)
    params = parse_options(spec, "pych", DEFAULTS)
    params.update(options)
    return PychDetector(**params)
