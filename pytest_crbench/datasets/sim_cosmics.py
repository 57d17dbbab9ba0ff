"""Simulated cosmic rays on an ACS/WFC chip (ACS ISR 2002-07, Riess; Miles et al. 2021).

1.5-3 % of pixels per 1000 s (``CR_FRACTION_PER_1000S`` at mid solar cycle, modulated
by +-25 % with the solar cycle: highest at solar minimum ~2019.9/2008.9, lowest at
maximum ~2014.4); charge per event with a sharp cut-off near 500 e- and a median near
1000 e-; oblique tracks of heavy-tailed length; every track point's charge diffuses onto
its neighbours with a Gaussian kernel, so that diffusion, not the direct hit, sets the
4-5 affected pixels of a typical event.  A pixel counts as "affected" when it holds at
least ``CR_PIXEL_FLOOR`` e- (smaller diffused amounts are folded back into the event's
other pixels, so each event's charge is conserved).  Part of the simulator
(:mod:`pytest_crbench.datasets.simulate`).
"""

from __future__ import annotations

import math
import datetime as _dt
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

__all__ = ["deposit_sparse", "CR_FRACTION_PER_1000S", "CR_PIXEL_FLOOR", "CR_MEAN_PIXELS", "decimal_year",
           "cr_fraction_per_1000s", "cr_event_rate", "CosmicRays", "sample_cr_events",
           "deposit_cosmic_rays", "simulate_cosmic_rays"]

# --- cosmic rays ------------------------------------------------------------------------
#: Fraction of pixels affected per 1000 s at mid solar cycle (ACS ISR 2002-07: 1.5-3 %).
CR_FRACTION_PER_1000S = 0.024
SOLAR_AMPLITUDE = 0.25       #: relative modulation of the CR rate
SOLAR_MINIMUM = 2019.9       #: decimal year of a solar minimum
SOLAR_PERIOD = 11.0          #: years
CR_PIXEL_FLOOR = 20.0        #: e-, smallest diffused charge that counts as a CR pixel
CR_DIFFUSION_SIGMA = 0.35    #: px, Gaussian charge-diffusion kernel
CR_CHARGE_CUTOFF = 450.0     #: e-, charge cut-off (soft: a lognormal is added above it)
CR_CHARGE_MEDIAN_EXCESS = 440.0  #: e-, median of the lognormal part
CR_CHARGE_SIGMA = 0.9        #: lognormal width
CR_TRACK_SCALE = 0.6         #: px, Lomax scale of the projected track length
CR_TRACK_INDEX = 1.4         #: Lomax tail index (heavy-tailed lengths)
CR_TRACK_MAX = 150.0         #: px
CR_DEPTH = 1.5               #: px, depletion depth: charge grows as sqrt(1 + (L/depth)^2)
#: Mean number of affected pixels per event (measured; converts fractions to event rates).
CR_MEAN_PIXELS = 7.1


def decimal_year(date: str) -> float:
    """``"2014-04-08"`` (or a full ISO timestamp) -> 2014.26."""
    d = _dt.date.fromisoformat(str(date)[:10])
    start = _dt.date(d.year, 1, 1)
    days = (_dt.date(d.year + 1, 1, 1) - start).days
    return d.year + (d - start).days / days


def cr_fraction_per_1000s(date: str) -> float:
    """Fraction of pixels affected by cosmic rays per 1000 s on ``date`` (solar cycle)."""
    phase = 2.0 * math.pi * (decimal_year(date) - SOLAR_MINIMUM) / SOLAR_PERIOD
    return CR_FRACTION_PER_1000S * (1.0 + SOLAR_AMPLITUDE * math.cos(phase))


def cr_event_rate(date: str) -> float:
    """Cosmic-ray events per pixel per second on ``date``."""
    frac = cr_fraction_per_1000s(date)
    return -math.log1p(-frac) / (1000.0 * CR_MEAN_PIXELS)


# ========================================================================================
# Cosmic rays
# ========================================================================================

@dataclass
class CosmicRays:
    """Injected cosmic rays: the charge image and one record per event."""

    crtruth: np.ndarray            # float32 (ny, nx), e-
    events: dict[str, np.ndarray]  # x, y, length, angle, charge (e- in the image), npix

    @property
    def fraction(self) -> float:
        return float(np.count_nonzero(self.crtruth) / self.crtruth.size)


def sample_cr_events(n: int, shape: tuple[int, int], rng: np.random.Generator) -> dict:
    """Draw ``n`` events: centre, projected track length (px), angle, charge (e-)."""
    ny, nx = shape
    u = rng.random(n)
    length = np.minimum(CR_TRACK_SCALE * ((1.0 - u) ** (-1.0 / CR_TRACK_INDEX) - 1.0),
                        CR_TRACK_MAX)
    base = CR_CHARGE_CUTOFF + rng.lognormal(math.log(CR_CHARGE_MEDIAN_EXCESS),
                                            CR_CHARGE_SIGMA, n)
    return {
        "x": rng.uniform(-0.5, nx - 0.5, n),
        "y": rng.uniform(-0.5, ny - 0.5, n),
        "length": length,
        "angle": rng.uniform(0.0, math.pi, n),
        "charge": base * np.sqrt(1.0 + (length / CR_DEPTH) ** 2),
    }


def deposit_cosmic_rays(shape: tuple[int, int], events: dict) -> CosmicRays:
    """Deposit events (see :func:`sample_cr_events`) with charge diffusion.

    Each track is sampled every 0.5 px; each sample's charge is spread over a 3x3 pixel
    neighbourhood with a pixel-integrated Gaussian (sigma ``CR_DIFFUSION_SIGMA``).  Per
    event, pixel charges below ``CR_PIXEL_FLOOR`` are dropped (the event's brightest pixel
    is always kept) and the kept ones rescaled, so each event conserves the charge that
    fell inside the image; ``events["charge"]`` is replaced by that charge and
    ``events["npix"]`` records the affected pixels.
    """
    pix, charge, ev = _deposit(shape, events)
    crtruth = np.bincount(pix, weights=charge, minlength=shape[0] * shape[1]).reshape(shape)
    return CosmicRays(crtruth.astype(np.float32), ev)


def deposit_sparse(shape: tuple[int, int], events: dict
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """:func:`deposit_cosmic_rays` without the image: flat pixel indices (sorted) and
    their charges (e-, one entry per event and pixel), and the updated event table.
    Chips too large for a full-frame image (:mod:`pytest_crbench.datasets.csst`) add
    them strip by strip."""
    pix, charge, ev = _deposit(shape, events)
    order = np.argsort(pix, kind="stable")
    return pix[order], charge[order], ev


def _deposit(shape: tuple[int, int], events: dict
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The pixels (flat indices, in event order) and charges of :func:`deposit_cosmic_rays`."""
    ny, nx = shape
    npix_img = ny * nx
    ev = {k: np.asarray(v, dtype=float).copy() for k, v in events.items()}
    n = ev["x"].size
    if n == 0:
        ev["npix"] = np.zeros(0, int)
        return np.zeros(0, np.int64), np.zeros(0), ev
    # --- points along each track (symmetrical about the centre) -------------------------
    k_pts = np.maximum(1, np.ceil(ev["length"] / 0.5).astype(int) + 1)
    eid = np.repeat(np.arange(n), k_pts)
    first = np.cumsum(k_pts) - k_pts
    j = np.arange(eid.size) - first[eid]
    t = np.where(k_pts[eid] > 1, j / np.maximum(k_pts[eid] - 1, 1) - 0.5, 0.0)
    px = ev["x"][eid] + t * ev["length"][eid] * np.cos(ev["angle"][eid])
    py = ev["y"][eid] + t * ev["length"][eid] * np.sin(ev["angle"][eid])
    q = ev["charge"][eid] / k_pts[eid]
    # --- pixel-integrated Gaussian diffusion over 3x3 (beyond it: < 0.3 % at sigma 0.35) -
    off = np.arange(-1, 2)
    ix, iy = np.rint(px).astype(int), np.rint(py).astype(int)
    s = CR_DIFFUSION_SIGMA * math.sqrt(2.0)

    def weights(frac):  # frac: (m,) sub-pixel position relative to the pixel centre
        edges = off[None, :] - frac[:, None]
        w = 0.5 * (erf((edges + 0.5) / s) - erf((edges - 0.5) / s))
        return w / w.sum(axis=1, keepdims=True)

    wx, wy = weights(px - ix), weights(py - iy)
    w = q[:, None, None] * wy[:, :, None] * wx[:, None, :]        # (m, 3, 3)
    rows = iy[:, None, None] + off[None, :, None]
    cols = ix[:, None, None] + off[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    e3 = np.broadcast_to(eid[:, None, None], rows.shape)
    ok = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    key = e3[ok].astype(np.int64) * npix_img + rows[ok] * nx + cols[ok]
    ukey, inv = np.unique(key, return_inverse=True)
    charge = np.bincount(inv, weights=w[ok])
    e_of = ukey // npix_img
    pix = ukey % npix_img
    in_image = np.bincount(e_of, weights=charge, minlength=n)
    # --- floor: drop faint diffused pixels, keep each event's brightest ------------------
    # (ukey is sorted, so each event's entries are contiguous)
    starts = np.flatnonzero(np.r_[True, e_of[1:] != e_of[:-1]])
    ev_max = np.maximum.reduceat(charge, starts)
    counts = np.diff(np.r_[starts, charge.size])
    keep = (charge >= CR_PIXEL_FLOOR) | (charge >= np.repeat(ev_max, counts))
    e_k, pix_k, c_k = e_of[keep], pix[keep], charge[keep]
    kept = np.bincount(e_k, weights=c_k, minlength=n)
    scale = np.divide(in_image, kept, out=np.zeros(n), where=kept > 0)
    c_k = c_k * scale[e_k]
    ev["charge"] = in_image
    ev["npix"] = np.bincount(e_k, minlength=n)
    return pix_k, c_k, ev


def simulate_cosmic_rays(shape: tuple[int, int], exptime: float, *, date: str,
                         rng: np.random.Generator, rate_scale: float = 1.0) -> CosmicRays:
    """Cosmic rays of one exposure: Poisson number of events for ``exptime`` on ``date``."""
    lam = cr_event_rate(date) * rate_scale * exptime * shape[0] * shape[1]
    events = sample_cr_events(int(rng.poisson(lam)), shape, rng)
    return deposit_cosmic_rays(shape, events)
