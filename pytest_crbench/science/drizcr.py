"""AstroDrizzle's ``driz_cr`` cosmic-ray rule, in numpy (method.md section 1).

AstroDrizzle compares each exposure with the median of its group mapped back onto the
exposure's pixels (the "blot") and flags a pixel as cosmic ray where

    |data - blot| > scale₁ · deriv(blot) + snr₁ · noise                         (pass 1)

and a pixel of the 3×3 neighbourhood of a pass-1 pixel where

    |data - blot| > scale₂ · deriv(blot) + snr₂ · noise                         (pass 2)

with ``noise = sqrt(gain · |blot + background| + read_noise²) / gain`` and ``deriv`` the
largest absolute difference between a blotted pixel and its four neighbours
(:func:`derivative`).  Near a star's centre the derivative term dominates, so only cosmic
rays that stand out against the star's own gradient are flagged.  The mask is then grown
by a ``grow`` × ``grow`` box and by a ``ctegrow``-pixel tail along the readout direction.

This module reproduces drizzlepac's ``drizCR._driz_cr`` and ``quickDeriv.qderiv``
(drizzlepac 3.11) bit for bit, including their edge conventions; the test
``tests/test_drizcr_equivalence.py`` runs drizzlepac's own function on the same arrays
and requires identical masks.  The only deliberate difference: ``ctegrow > 0`` with no
readout direction (``cte_dir = 0``) is an error here, where drizzlepac flags every pixel.

Plain numpy; no drizzlepac needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pytest_crbench.errors import CRBenchConfigError

__all__ = ["parse_pair", "DrizCRParams", "derivative", "two_pass_mask", "driz_cr_mask",
           "cte_direction"]


def parse_pair(value, what: str) -> tuple[float, float]:
    """``"5.0 1.5"`` / ``"5,1.5"`` / ``(5, 1.5)`` → (5.0, 1.5); drizzlepac's separators."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,;\s]+", value.strip()) if p]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise CRBenchConfigError(f"{what}: expected two numbers such as \"5.0 1.5\", got {value!r}")
    try:
        numbers = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise CRBenchConfigError(f"{what}: expected two numbers such as \"5.0 1.5\", got {value!r}") from None
    if len(numbers) != 2 or not all(np.isfinite(numbers)):
        raise CRBenchConfigError(f"{what}: expected two finite numbers such as \"5.0 1.5\", got {value!r}")
    return numbers  # type: ignore[return-value]


@dataclass(frozen=True)
class DrizCRParams:
    """The ``driz_cr_*`` parameters of AstroDrizzle.

    ``snr``: (pass 1, pass 2) signal-to-noise thresholds — the paper's "5 and 1.5";
    ``scale``: (pass 1, pass 2) multipliers of the derivative — AstroDrizzle's default
    1.2 and 0.7, which the paper did not change; ``grow``: side of the box every flagged
    pixel is grown by (1 = no growth); ``ctegrow``: length of the CTE tail, in pixels,
    added along the readout direction (0 = none).
    """

    snr: tuple[float, float] = (5.0, 1.5)
    scale: tuple[float, float] = (1.2, 0.7)
    grow: int = 1
    ctegrow: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr", parse_pair(self.snr, "reference_snr"))
        object.__setattr__(self, "scale", parse_pair(self.scale, "reference_scale"))
        if min(self.snr) <= 0:
            raise CRBenchConfigError(f"reference_snr: both values must be > 0, got {self.snr}")
        if min(self.scale) < 0:
            raise CRBenchConfigError(f"reference_scale: both values must be >= 0, got {self.scale}")
        for name in ("grow", "ctegrow"):
            v = getattr(self, name)
            if isinstance(v, bool) or not float(v).is_integer():
                raise CRBenchConfigError(f"reference_{name}: expected an integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.grow < 1:
            raise CRBenchConfigError(f"reference_grow: expected an integer >= 1, got {self.grow}")
        if self.ctegrow < 0:
            raise CRBenchConfigError(f"reference_ctegrow: expected an integer >= 0, got {self.ctegrow}")

    def as_dict(self) -> dict:
        return {"snr": list(self.snr), "scale": list(self.scale), "grow": self.grow,
                "ctegrow": self.ctegrow}


def derivative(image: np.ndarray) -> np.ndarray:
    """Largest absolute difference between each pixel and its 4 neighbours (float32).

    drizzlepac's convention at the borders: a neighbour is compared only inside a window
    that leaves out the last row and the outer columns (left/right neighbours), or the
    outer rows and last column (up/down neighbours); everywhere else the neighbour's value
    counts as 0, so border pixels get ``|pixel|`` and are effectively never flagged.

    drizzlepac computes in float64 and returns float32.  A float32 image is computed in
    float32: each difference rounded once to float32 equals the float64 difference
    rounded to float32 (float64 carries more than 2 × 24 + 2 bits, so the double
    rounding is innocuous), and rounding commutes with ``fabs`` and ``max``: the same
    bits, at half the memory traffic.
    """
    a = np.asarray(image)
    if a.dtype != np.float32:
        a = a.astype(np.float64)
    ny, nx = a.shape
    out = np.zeros(a.shape, a.dtype)
    rows_in, cols_in = np.ones(ny, bool), np.ones(nx, bool)  # inside every window
    for dst, src in [
            ((slice(0, ny - 1), slice(1, nx - 1)), (slice(0, ny - 1), slice(0, nx - 2))),  # left
            ((slice(0, ny - 1), slice(0, nx - 2)), (slice(0, ny - 1), slice(1, nx - 1))),  # right
            ((slice(1, ny - 1), slice(0, nx - 1)), (slice(0, ny - 2), slice(0, nx - 1))),  # up
            ((slice(0, ny - 2), slice(0, nx - 1)), (slice(1, ny - 1), slice(0, nx - 1)))]:  # down
        view = out[dst]
        np.maximum(view, np.fabs(a[dst] - a[src]), out=view)
        rows, cols = np.zeros(ny, bool), np.zeros(nx, bool)
        rows[dst[0]], cols[dst[1]] = True, True
        rows_in &= rows
        cols_in &= cols
    # outside a window (border rows and columns) the neighbour counts as 0: |pixel|
    # (max is order-free here: every value is >= +0 or NaN, and NaN propagates)
    edge = np.flatnonzero(~rows_in)
    out[edge] = np.maximum(out[edge], np.fabs(a[edge]))
    edge = np.flatnonzero(~cols_in)
    out[:, edge] = np.maximum(out[:, edge], np.fabs(a[:, edge]))
    return out.astype(np.float32, copy=False)


def _any_in_window(flag: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """True where any ``flag[y + dy, x + dx]`` over ``offsets`` is True; the image is
    extended by mirror reflection (scipy's ``boundary='symm'``)."""
    if not offsets:
        return np.zeros_like(flag, dtype=bool)
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = np.pad(flag, pad, mode="symmetric")
    ny, nx = flag.shape
    out = np.zeros(flag.shape, bool)
    for dy, dx in offsets:
        out |= padded[pad + dy: pad + dy + ny, pad + dx: pad + dx + nx]
    return out


def _box_offsets(size: int) -> list[tuple[int, int]]:
    """Pixels read by a ``size`` × ``size`` box centred as scipy's 'same' convolution does."""
    lo = -(size // 2)  # for even sizes the box reaches one pixel further back than forward
    return [(dy, dx) for dy in range(lo, lo + size) for dx in range(lo, lo + size)]


def _tail_offsets(ctegrow: int, cte_dir: int) -> list[tuple[int, int]]:
    """Pixels whose flag spreads to a pixel through the CTE tail: the ``ctegrow`` pixels
    after it (cte_dir = +1) or before it (cte_dir = -1) along its column."""
    if cte_dir == 1:
        return [(d, 0) for d in range(1, ctegrow + 1)]
    return [(-d, 0) for d in range(1, ctegrow + 1)]


def two_pass_mask(excess: np.ndarray, threshold1, threshold2) -> np.ndarray:
    """Pixels whose ``excess`` is above ``threshold2`` and that lie in the 3×3
    neighbourhood of a pixel above ``threshold1`` (itself included).

    Written as "not at or below" so that NaN counts as flagged, as in drizzlepac.
    """
    first = ~(excess <= threshold1)
    return ~(excess <= threshold2) & _any_in_window(first, _box_offsets(3))


def driz_cr_mask(data: np.ndarray, blot: np.ndarray, *, gain: float, read_noise: float,
                 background: float = 0.0, params: DrizCRParams | None = None,
                 cte_dir: int = 0) -> np.ndarray:
    """Boolean cosmic-ray mask (True = cosmic ray) of ``data`` against the model ``blot``.

    ``data`` and ``blot`` are in the same units (here electrons); ``gain`` converts
    them to detected charge (1 for electron images), ``read_noise`` is in electrons,
    ``background`` is the sky already subtracted from ``blot``.  ``cte_dir`` is the
    readout direction along rows (+1, -1, 0 = none), used only when ``params.ctegrow``
    > 0.  Arithmetic follows drizzlepac's dtypes (float32 for float32 inputs).
    """
    params = params or DrizCRParams()
    data = np.asarray(data)
    blot = np.asarray(blot)
    if data.shape != blot.shape or data.ndim != 2:
        raise ValueError(f"data {data.shape} and blot {blot.shape} must be 2-D images of one shape")
    if params.ctegrow > 0 and cte_dir not in (1, -1):
        raise CRBenchConfigError(
            f"reference_ctegrow = {params.ctegrow} needs a readout direction, but this "
            "detector has none (cte_dir = 0); set reference_ctegrow = 0")
    deriv = derivative(blot)
    excess = np.absolute(data - blot)
    sigma = np.sqrt(float(gain) * np.abs(blot + float(background)) + float(read_noise) ** 2)
    (snr1, snr2), (mult1, mult2) = params.snr, params.scale
    flagged = two_pass_mask(excess, mult1 * deriv + snr1 * sigma / float(gain),
                            mult2 * deriv + snr2 * sigma / float(gain))
    mask = flagged
    if params.grow > 1:
        mask = _any_in_window(flagged, _box_offsets(params.grow))
    if params.ctegrow > 0:  # the tail grows from the flags before the box growth
        mask = mask | _any_in_window(flagged, _tail_offsets(params.ctegrow, cte_dir))
    return mask


def cte_direction(instrument: str, detector: str, ccdchip: int) -> int:
    """Readout direction along rows of one chip, as AstroDrizzle assigns it (0 = none).

    ``ccdchip`` is the chip number (``CCDCHIP``; this project's ``Exposure.chip``).
    ACS/WFC and WFC3/UVIS: chip 2 (``SCI,1``) → -1, chip 1 (``SCI,2``) → +1; WFPC2: -1;
    STIS/CCD: +1.  ACS/HRC depends on the readout amplifier and others have none: 0.
    """
    inst, det = instrument.upper(), detector.upper()
    if (inst, det) in {("ACS", "WFC"), ("WFC3", "UVIS")}:
        return -1 if ccdchip == 2 else 1
    if inst == "WFPC2":
        return -1
    if (inst, det) == ("STIS", "CCD"):
        return 1
    return 0
