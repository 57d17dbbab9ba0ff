"""The detector interface every cosmic-ray detector implements.

A detector takes one image in electrons plus its ignore mask (pixels to leave alone:
bad pixels and saturation) and the :class:`~pytest_crbench.science.exposures.Exposure` it came
from (for gain, read noise, saturation level), and returns a :class:`Prediction`: a
boolean cosmic-ray mask, optionally the per-pixel probability it was thresholded from,
and optionally the detector's own cleaned image.

User detectors need only a ``name``, a ``version``, a ``threshold`` and a ``detect``
method; :func:`as_prediction` accepts a bare boolean mask or a probability array too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pytest_crbench.errors import CRBenchDetectorError

__all__ = ["Prediction", "Detector", "threshold_mask", "as_prediction"]


@dataclass
class Prediction:
    """What a detector says about one image."""

    mask: np.ndarray
    probability: np.ndarray | None = None
    cleaned: np.ndarray | None = None


@runtime_checkable
class Detector(Protocol):
    """The interface: ``detect(image_e, ignore, exposure) -> Prediction | ndarray``."""

    name: str
    version: str
    threshold: float | None

    def detect(self, image: np.ndarray, ignore: np.ndarray, exposure: Any) -> Any:
        ...


def threshold_mask(probability, threshold: float) -> np.ndarray:
    """The cosmic-ray mask of a probability map: pixels whose probability *exceeds*
    ``threshold`` (strictly: deepCR's own rule, so our deepCR masks equal its ``clean``).
    The one thresholding rule of the package, for deepCR and user detectors alike."""
    return np.asarray(probability) > threshold


def as_prediction(result: Any, *, threshold: float | None, shape: tuple[int, int],
                  detector: str, where: str = "") -> Prediction:
    """Normalise a detector's return value to a :class:`Prediction` with a bool mask.

    A float array is taken as a probability and thresholded at ``threshold``
    (:func:`threshold_mask`: probability > threshold);
    a bool or integer 0/1 array is taken as the mask.  Anything else, a wrong shape, a
    probability that is not a finite number in [0, 1] (NaN would read as "no cosmic
    ray") or a cleaned image with NaN/inf raises :class:`CRBenchDetectorError` naming the
    detector and ``where`` (the exposure).
    """
    try:
        return _as_prediction(result, threshold=threshold, shape=shape, detector=detector)
    except CRBenchDetectorError as exc:
        if where:
            raise CRBenchDetectorError(f"{exc} (on {where})") from None
        raise


def _check_values(arr: np.ndarray, what: str, detector: str, *, unit: bool) -> None:
    """``arr`` must be finite (and in [0, 1] if ``unit``)."""
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise CRBenchDetectorError(
            f"detector {detector!r} returned {what} of dtype {arr.dtype}; expected real numbers")
    bad = ~np.isfinite(arr)
    if unit:
        with np.errstate(invalid="ignore"):
            bad |= (arr < 0) | (arr > 1)
    if bad.any():
        first = tuple(int(v) for v in np.argwhere(bad)[0])
        finite = arr[np.isfinite(arr)]
        span = (f"finite values from {float(finite.min()):g} to {float(finite.max()):g}"
                if finite.size else "no finite value")
        raise CRBenchDetectorError(
            f"detector {detector!r} returned {what} with {int(bad.sum())} of {arr.size} "
            "value(s) " + ("not finite numbers in [0, 1]" if unit else "NaN or infinite")
            + f" (first at y,x={first}: {float(arr[first]):g}; {span})")


def _as_prediction(result: Any, *, threshold: float | None, shape: tuple[int, int],
                   detector: str) -> Prediction:
    if isinstance(result, Prediction):
        pred = result
    elif isinstance(result, np.ndarray):
        if result.dtype == bool or np.issubdtype(result.dtype, np.integer):
            pred = Prediction(mask=result)
        elif np.issubdtype(result.dtype, np.floating):
            pred = Prediction(mask=None, probability=result)  # type: ignore[arg-type]
        else:
            raise CRBenchDetectorError(
                f"detector {detector!r} returned an array of dtype {result.dtype}; expected "
                "a bool mask or a float probability"
            )
    else:
        raise CRBenchDetectorError(
            f"detector {detector!r} returned {type(result).__name__}; expected a Prediction, "
            "a bool mask or a float probability array"
        )
    if pred.probability is not None:
        prob = np.asarray(pred.probability)
        if prob.shape == tuple(shape):
            _check_values(prob, "a probability", detector, unit=True)
    if pred.mask is None:
        if pred.probability is None:
            raise CRBenchDetectorError(f"detector {detector!r} returned neither mask nor probability")
        if threshold is None:
            raise CRBenchDetectorError(
                f"detector {detector!r} returned a probability but has no threshold"
            )
        pred.mask = threshold_mask(pred.probability, threshold)
    mask = np.asarray(pred.mask)
    if mask.shape != tuple(shape):
        raise CRBenchDetectorError(
            f"detector {detector!r} returned a mask of shape {mask.shape}, image is {tuple(shape)}"
        )
    if mask.dtype != bool:
        values = np.unique(mask)
        if not np.isin(values, (0, 1)).all():
            raise CRBenchDetectorError(
                f"detector {detector!r} returned an integer mask with values other than 0/1"
            )
        mask = mask.astype(bool)
    pred.mask = mask
    for attr in ("probability", "cleaned"):
        arr = getattr(pred, attr)
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.shape != tuple(shape):
            raise CRBenchDetectorError(
                f"detector {detector!r} returned {attr} of shape {arr.shape}, "
                f"image is {tuple(shape)}"
            )
        _check_values(arr, "a probability" if attr == "probability" else "a cleaned image",
                      detector, unit=attr == "probability")
    return pred


def parse_options(text: str, detector: str, valid) -> dict[str, str]:
    """Parse the ``key=value,key=value`` options of a spec (what follows
    ``<detector>:``) into strings; an item without ``=`` or an unknown key raises
    :class:`CRBenchDetectorError` listing the ``valid`` keys."""
    opts: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or key not in valid:
            raise CRBenchDetectorError(
                f"{detector}: option {item!r} is not key=value with a known key; valid "
                f"keys: {', '.join(valid)}")
        opts[key] = value
    return opts
