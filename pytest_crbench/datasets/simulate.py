"""Simulated HST ACS/WFC F606W ``_flc``-like exposures: the embedded default dataset.

Every image is one chip in electrons (bias-free), built from an analytic scene:

* **sky** 0.06-0.10 e-/s/px (F606W zodiacal light plus dark current);
* **stars** with a Moffat PSF (beta = 2.5, FWHM ~ 2 px after pixel integration), rendered
  by 5x5 sub-pixel sampling so they are not aliased; fluxes follow a power-law luminosity
  function, and a few stars per field are bright enough to saturate (full well
  80,000 e-): their excess charge bleeds up and down the column and the pixels at full
  well are flagged ``DQ_SATURATED`` (256);
* a few **galaxies** (PSF-softened Sersic profiles, n = 0.7-4);
* **hot pixels** (``DQ_HOT`` = 16, their number grows with the date) and **bad columns**
  (``DQ_BADCOL`` = 4), fixed per detector date (the same in every exposure of a group);
* Poisson noise on every photo-electron and Gaussian read noise (4.5 e-);
* **cosmic rays** following ACS ISR 2002-07 (Riess): 1.5-3 % of pixels per 1000 s
  (``CR_FRACTION_PER_1000S`` at mid solar cycle, modulated by +-25 % with the solar cycle:
  highest at solar minimum ~2019.9/2008.9, lowest at maximum ~2014.4); charge per event
  with a sharp cut-off near 500 e- and a median near 1000 e-; oblique tracks of
  heavy-tailed length; every track point's charge diffuses onto its neighbours with a
  Gaussian kernel (sigma 0.5 px), so that diffusion, not the direct hit, sets the 4-5
  affected pixels of a typical event.  The exact injected charge per pixel is
  ``Exposure.crtruth``; a pixel counts as "affected" when it holds at least
  ``CR_PIXEL_FLOOR`` e- (smaller diffused amounts are folded back into the event's other
  pixels, so each event's charge is conserved).

``ERR`` is ``sqrt(read_noise**2 + max(sci, 0))`` (what calacs gives).

Public API: :class:`SimSpec`, :data:`PRESETS`, :data:`SIMULATOR_VERSION`,
:func:`simulate_group`, :func:`simulate_dithered_group`, :func:`simulate_dataset`,
:func:`ensure_simulated`, :func:`load_simulated`, plus the building blocks
:func:`cr_fraction_per_1000s`, :func:`simulate_cosmic_rays`, :func:`render_stars`.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.special import erf

from pytest_crbench._util import sha256_file
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.datasets.fits import read_exposures, write_exposures
from pytest_crbench.science.exposures import DEFAULT_SATURATION, Dataset, Exposure, Group

#: Bump whenever the simulated pixels (or the file layout) change; goes into provenance
#: and into every manifest, and a cached dataset with another version is rebuilt.
SIMULATOR_VERSION = "1.0.0"

# --- ACS DQ bits ------------------------------------------------------------------------
DQ_BADCOL = 4          #: bad (dead or hot) column
DQ_HOT = 16            #: hot pixel
DQ_SATURATED = 256     #: full-well saturated (including bleed trails)

# --- detector facts (ACS/WFC) -----------------------------------------------------------
READ_NOISE = 4.5       #: e-
GAIN = 2.0             #: e-/DN (the CCDGAIN keyword of real _flc files; data are in e-)
FULL_WELL = 80000.0    #: e-, charge beyond it bleeds along the column
PIXEL_SCALE = 0.05     #: arcsec / px

# --- PSF --------------------------------------------------------------------------------
MOFFAT_BETA = 2.5
#: Intrinsic Moffat FWHM (px); integration over the 1-px pixel broadens it to ~2.0 px.
MOFFAT_FWHM = 1.8
_ALPHA = MOFFAT_FWHM / (2.0 * math.sqrt(2.0 ** (1.0 / MOFFAT_BETA) - 1.0))
_OVERSAMPLE = 5

# --- scene ------------------------------------------------------------------------------
STARS_PER_MPIX = 1600.0      #: stars per 10^6 px (luminosity function down to STAR_FMIN)
STAR_FMIN = 0.5              #: e-/s, faintest star
STAR_FMAX = 2.0e4            #: e-/s, brightest star of the power law
STAR_LF_SLOPE = 0.7          #: N(>F) ~ F^-slope
SATURATED_PER_MPIX = 10.0    #: extra stars forced to saturate (at least one per field)
GALAXIES_PER_MPIX = 45.0

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


# ========================================================================================
# Presets
# ========================================================================================

@dataclass(frozen=True)
class GroupSpec:
    """One simulated group: observation date (ISO) and the exposure times (s)."""

    date: str
    exptimes: tuple[float, ...]


@dataclass(frozen=True)
class SimSpec:
    """A simulated-dataset preset: image shape (rows, cols), the groups, the seed."""

    name: str
    shape: tuple[int, int]
    groups: tuple[GroupSpec, ...]
    seed: int = 20230501
    description: str = ""
    #: simulated camera written strip by strip (:mod:`pytest_crbench.datasets.csst`);
    #: "" = the ACS/WFC simulator of this module, whole chips in memory
    camera: str = ""

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_exposures(self) -> int:
        return sum(len(g.exptimes) for g in self.groups)

    @property
    def megapixels(self) -> float:
        return self.n_exposures * self.shape[0] * self.shape[1] / 1e6


_DEFAULT_GROUPS = (
    GroupSpec("2010-09-14", (360.0, 700.0, 1100.0, 1500.0)),
    GroupSpec("2012-06-20", (500.0, 900.0, 1400.0, 2000.0)),
    GroupSpec("2014-04-08", (560.0, 1200.0, 1800.0, 2400.0)),
    GroupSpec("2015-12-02", (1000.0, 1800.0, 2600.0, 3300.0)),
    GroupSpec("2017-09-26", (1200.0, 2200.0, 3200.0, 4200.0)),
    GroupSpec("2019-08-11", (1500.0, 2900.0, 4200.0, 5600.0)),
)

PRESETS: dict[str, SimSpec] = {
    "sim": SimSpec(
        "sim", (512, 512), _DEFAULT_GROUPS, seed=20230501,
        description="6 groups x 4 exposures of 512x512, 2010-09..2019-08, CR density ~1-15 %",
    ),
    "sim-full": SimSpec(
        "sim-full", (2048, 4096),
        (_DEFAULT_GROUPS[0], _DEFAULT_GROUPS[2], _DEFAULT_GROUPS[5]), seed=20230502,
        description="3 groups x 4 full ACS/WFC chips (2048x4096)",
    ),
    "sim-tiny": SimSpec(
        "sim-tiny", (128, 128),
        (GroupSpec("2012-06-20", (400.0, 1000.0, 2000.0)),
         GroupSpec("2019-08-11", (600.0, 1500.0, 3000.0))), seed=20230503,
        description="2 groups x 3 exposures of 128x128, for fast tests",
    ),
    "sim-csst": SimSpec(
        "sim-csst", (9232, 9216), (GroupSpec("2027-06-01", (150.0, 150.0, 150.0)),),
        seed=20270601, camera="csst",
        description="1 group x 3 exposures of one CSST main-survey chip (9216x9232, 150 s), "
                    "generated strip by strip",
    ),
}


# ========================================================================================
# Small helpers
# ========================================================================================

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


def _rng(seed, rng) -> np.random.Generator:
    if rng is not None:
        return rng
    return np.random.default_rng(seed)


# ========================================================================================
# Source rendering (analytic, sub-pixel sampled, vectorised)
# ========================================================================================

def _moffat(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Unit-flux Moffat surface brightness."""
    u = 1.0 + (dx * dx + dy * dy) * (1.0 / _ALPHA**2)
    norm = (MOFFAT_BETA - 1.0) / (math.pi * _ALPHA**2)
    if MOFFAT_BETA == 2.5:  # u**-2.5 without the slow float power
        return norm / (u * u * np.sqrt(u))
    return norm * u ** (-MOFFAT_BETA)


class _Accumulator:
    """Collects stamps and adds them to a flat image with a single ``np.bincount``."""

    def __init__(self, shape):
        self.shape = shape
        self.index: list[np.ndarray] = []
        self.value: list[np.ndarray] = []

    def add(self, iy, ix, half, stamps) -> None:
        """Add ``stamps`` (n, S, S) centred on integer pixels (iy, ix)."""
        ny, nx = self.shape
        off = np.arange(-half, half + 1)
        rows = iy[:, None, None] + off[None, :, None]
        cols = ix[:, None, None] + off[None, None, :]
        ok = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
        rows, cols = np.broadcast_arrays(rows, cols)
        self.index.append(rows[ok] * nx + cols[ok])
        self.value.append(stamps[ok])

    def image(self) -> np.ndarray:
        ny, nx = self.shape
        if not self.index:
            return np.zeros(self.shape)
        return np.bincount(np.concatenate(self.index), weights=np.concatenate(self.value),
                           minlength=ny * nx).reshape(self.shape)


def _stamp_batches(n: int, half: int, oversample: int = _OVERSAMPLE, budget: int = 8_000_000):
    per = ((2 * half + 1) * oversample) ** 2
    step = max(1, budget // per)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _subpixel_offsets(half: int, oversample: int = _OVERSAMPLE) -> np.ndarray:
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    return (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()


def _star_half_size(peak_counts: np.ndarray) -> np.ndarray:
    """Stamp half-size (px) so that the truncated wing is below ~0.05 e-/px."""
    peak = np.maximum(peak_counts, 1.0) * 0.15
    r = _ALPHA * (peak / 0.05) ** (1.0 / (2 * MOFFAT_BETA))
    classes = np.array([6, 10, 16, 24, 36, 48, 64])
    idx = np.searchsorted(classes, r)
    return classes[np.minimum(idx, len(classes) - 1)]


#: Half-size (px) of the star core sampled on 5x5 sub-pixels; the wings beyond it are
#: sampled at pixel centres (their curvature is small there, and it saves ~25x the work).
_CORE_HALF = 4


def render_stars(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray,
                 *, max_counts: np.ndarray | None = None) -> np.ndarray:
    """Image (float64) of Moffat stars of total ``flux`` centred on pixel coords (x, y).

    Pixel (row i, col j) covers x in [j-0.5, j+0.5].  The PSF is averaged over 5x5
    sub-pixels within ``_CORE_HALF`` px of the centre and evaluated at pixel centres in
    the wings.  ``max_counts`` (per star, the largest flux it will be scaled to) sets the
    stamp size so that the truncated wings stay negligible.
    """
    x, y, flux = (np.asarray(a, dtype=float) for a in (x, y, flux))
    acc = _Accumulator(shape)
    if x.size == 0:
        return acc.image()
    halves = _star_half_size(flux if max_counts is None else np.asarray(max_counts, float))
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    fx, fy = x - ix, y - iy
    # core: oversampled
    h = _CORE_HALF
    p = _subpixel_offsets(h)
    S = 2 * h + 1
    for b in _stamp_batches(x.size, h):
        dx = p[None, :] - fx[b, None]                   # (n, S*os)
        dy = p[None, :] - fy[b, None]
        prof = _moffat(dx[:, None, :], dy[:, :, None])  # (n, S*os[y], S*os[x])
        stamps = prof.reshape(-1, S, _OVERSAMPLE, S, _OVERSAMPLE).mean(axis=(2, 4))
        acc.add(iy[b], ix[b], h, stamps * flux[b, None, None])
    # wings: pixel centres, core zeroed
    for half in np.unique(halves):
        sel = np.nonzero(halves == half)[0]
        half = int(half)
        off = np.arange(-half, half + 1, dtype=float)
        core = np.abs(off) <= h
        core2 = core[:, None] & core[None, :]
        for b in _stamp_batches(sel.size, half, oversample=1):
            i = sel[b]
            dx = off[None, :] - fx[i, None]
            dy = off[None, :] - fy[i, None]
            stamps = _moffat(dx[:, None, :], dy[:, :, None])
            stamps[:, core2] = 0.0
            acc.add(iy[i], ix[i], half, stamps * flux[i, None, None])
    return acc.image()


_GAL_OVERSAMPLE = 3  #: galaxies are PSF-softened, hence smooth: 3x3 sub-pixels suffice


def render_galaxies(shape: tuple[int, int], gal: dict[str, np.ndarray],
                    shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Image (float64) of PSF-softened elliptical Sersic galaxies (fluxes within stamp)."""
    acc = _Accumulator(shape)
    n_gal = gal["x"].size
    for k in range(n_gal):  # a handful per field: a loop is clearer than padding
        x = gal["x"][k] + shift[0]
        y = gal["y"][k] + shift[1]
        re, n, q, pa = gal["re"][k], gal["n"][k], gal["q"][k], gal["pa"][k]
        half = int(min(48, max(8, math.ceil(5 * re))))
        p = _subpixel_offsets(half, _GAL_OVERSAMPLE)
        ix, iy = int(round(x)), int(round(y))
        dx = (p - (x - ix))[None, :]
        dy = (p - (y - iy))[:, None]
        c, s = math.cos(pa), math.sin(pa)
        u = dx * c + dy * s
        v = (-dx * s + dy * c) / q
        r = np.sqrt(u * u + v * v + 0.8**2)   # 0.8 px softening ~ PSF core
        bn = 2.0 * n - 1.0 / 3.0 + 0.009876 / n
        prof = np.exp(-bn * ((r / re) ** (1.0 / n) - 1.0))
        S = 2 * half + 1
        stamp = prof.reshape(S, _GAL_OVERSAMPLE, S, _GAL_OVERSAMPLE).mean(axis=(1, 3))
        stamp *= gal["flux"][k] / stamp.sum()
        acc.add(np.array([iy]), np.array([ix]), half, stamp[None])
    return acc.image()


# ========================================================================================
# The scene (per field) and the detector (per date)
# ========================================================================================

@dataclass
class Scene:
    """Analytic sources of one field in the pixel frame of its first exposure (e-/s)."""

    sky_rate: float
    stars: dict[str, np.ndarray]
    galaxies: dict[str, np.ndarray]


def make_scene(shape: tuple[int, int], rng: np.random.Generator, *, t_ref: float,
               pad: float = 0.0) -> Scene:
    """Random field: sky, power-law stars (+ a few saturating ones), Sersic galaxies.

    Sources cover the image extended by ``pad`` px on every side (for dithers).
    ``t_ref`` (s) is the exposure time at which the forced bright stars saturate.
    """
    ny, nx = shape
    area = (ny + 2 * pad) * (nx + 2 * pad) / 1e6
    # power law N(>F) ~ F^-a between FMIN and FMAX (inverse-CDF sampling)
    n = rng.poisson(STARS_PER_MPIX * area)
    a = STAR_LF_SLOPE
    u = rng.random(n)
    lo, hi = STAR_FMIN ** -a, STAR_FMAX ** -a
    flux = (lo - u * (lo - hi)) ** (-1.0 / a)
    # forced saturating stars: peak (~0.14 of the flux) = 1.5-20 x full well at t_ref
    n_sat = max(1, rng.poisson(SATURATED_PER_MPIX * area))
    k = np.exp(rng.uniform(math.log(1.5), math.log(20.0), n_sat))
    flux = np.concatenate([flux, k * FULL_WELL / (0.14 * t_ref)])
    n = flux.size
    stars = {
        "x": rng.uniform(-0.5 - pad, nx - 0.5 + pad, n),
        "y": rng.uniform(-0.5 - pad, ny - 0.5 + pad, n),
        "flux": flux,
    }
    n_gal = max(1, rng.poisson(GALAXIES_PER_MPIX * area))
    galaxies = {
        "x": rng.uniform(-pad, nx - 1 + pad, n_gal),
        "y": rng.uniform(-pad, ny - 1 + pad, n_gal),
        "flux": np.exp(rng.uniform(math.log(20.0), math.log(600.0), n_gal)),
        "re": np.exp(rng.uniform(math.log(2.5), math.log(10.0), n_gal)),
        "n": rng.uniform(0.7, 4.0, n_gal),
        "q": rng.uniform(0.35, 1.0, n_gal),
        "pa": rng.uniform(0.0, math.pi, n_gal),
    }
    return Scene(float(rng.uniform(0.06, 0.10)), stars, galaxies)


def scene_rate_image(scene: Scene, shape: tuple[int, int], *, t_max: float,
                     shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Noise-free source image in e-/s (sky excluded), sources moved by ``shift`` (dx, dy)."""
    st = scene.stars
    img = render_stars(shape, st["x"] + shift[0], st["y"] + shift[1], st["flux"],
                       max_counts=st["flux"] * t_max)
    return img + render_galaxies(shape, scene.galaxies, shift)


@dataclass
class Detector:
    """Fixed-pattern defects of one chip on one date: hot pixels and bad columns."""

    hot_index: np.ndarray       # flat pixel indices
    hot_rate: np.ndarray        # e-/s
    badcols: list[tuple[int, int, int, float]] = field(default_factory=list)  # col, y0, y1, e-/s


def make_detector(shape: tuple[int, int], date: str, rng: np.random.Generator) -> Detector:
    """Hot pixels (0.15 % of pixels in 2010, growing ~0.05 %/yr) and 1 bad column / 512."""
    ny, nx = shape
    years = max(0.0, decimal_year(date) - 2010.0)
    frac = 0.0015 + 0.0005 * years
    n_hot = rng.poisson(frac * ny * nx)
    hot_index = rng.choice(ny * nx, size=min(n_hot, ny * nx), replace=False)
    hot_rate = rng.lognormal(math.log(0.15), 1.0, hot_index.size)  # ACS: hot > 0.08 e-/s
    badcols = []
    for _ in range(max(1, int(round(nx / 512)))):
        col = int(rng.integers(0, nx))
        y0 = int(rng.integers(0, ny // 2))
        y1 = int(rng.integers(y0 + ny // 4, ny + 1))
        badcols.append((col, y0, y1, float(rng.uniform(0.05, 0.5))))
    return Detector(hot_index, hot_rate, badcols)


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
    pix, charge, ev = deposit_sparse(shape, events)
    crtruth = np.bincount(pix, weights=charge, minlength=shape[0] * shape[1]).reshape(shape)
    return CosmicRays(crtruth.astype(np.float32), ev)


def deposit_sparse(shape: tuple[int, int], events: dict
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """:func:`deposit_cosmic_rays` without the image: flat pixel indices (sorted) and
    their charges (e-, one entry per event and pixel), and the updated event table.
    Chips too large for a full-frame image (:mod:`pytest_crbench.datasets.csst`) add
    them strip by strip."""
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
    order = np.argsort(pix_k, kind="stable")
    return pix_k[order], c_k[order], ev


def simulate_cosmic_rays(shape: tuple[int, int], exptime: float, *, date: str,
                         rng: np.random.Generator, rate_scale: float = 1.0) -> CosmicRays:
    """Cosmic rays of one exposure: Poisson number of events for ``exptime`` on ``date``."""
    lam = cr_event_rate(date) * rate_scale * exptime * shape[0] * shape[1]
    events = sample_cr_events(int(rng.poisson(lam)), shape, rng)
    return deposit_cosmic_rays(shape, events)


# ========================================================================================
# Exposures
# ========================================================================================

def _bleed(image: np.ndarray, full_well: float) -> np.ndarray:
    """Clip at full well, spilling each saturated run's excess up and down its column.

    Returns the boolean mask of pixels at full well.  ``image`` is modified in place.
    """
    cols = np.unique(np.nonzero(image > full_well)[1])
    for c in cols:
        col = image[:, c]
        sat = col > full_well
        edges = np.flatnonzero(np.diff(np.r_[0, sat.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            excess = float(np.sum(col[a:b] - full_well))
            col[a:b] = full_well
            for direction in (1, -1):
                rest = excess / 2.0
                idx = np.arange(b, col.size) if direction == 1 else np.arange(a - 1, -1, -1)
                if idx.size == 0 or rest <= 0:
                    continue
                room = np.maximum(full_well - col[idx], 0.0)
                cum = np.cumsum(room)
                n_full = int(np.searchsorted(cum, rest, side="right"))
                col[idx[:n_full]] = full_well
                if n_full < idx.size:
                    col[idx[n_full]] += rest - (cum[n_full - 1] if n_full else 0.0)
        image[:, c] = col
    return image >= full_well * (1 - 1e-9)


def expose(scene: Scene, source_rate: np.ndarray, detector: Detector, *, exptime: float,
           date: str, name: str, rng: np.random.Generator,
           cr_rate_scale: float = 1.0) -> Exposure:
    """One exposure: photons (Poisson) + dark/hot pixels + cosmic rays, bleed, read noise."""
    shape = source_rate.shape
    ny, nx = shape
    expected = (source_rate + scene.sky_rate) * exptime
    flat = expected.reshape(-1)
    flat[detector.hot_index] += detector.hot_rate * exptime
    dq = np.zeros(shape, np.int32)
    dq.reshape(-1)[detector.hot_index] |= DQ_HOT
    for col, y0, y1, rate in detector.badcols:
        expected[y0:y1, col] = rate * exptime + 0.3 * scene.sky_rate * exptime
        dq[y0:y1, col] |= DQ_BADCOL
    electrons = rng.poisson(expected).astype(np.float64)
    cr = simulate_cosmic_rays(shape, exptime, date=date, rng=rng, rate_scale=cr_rate_scale)
    electrons += cr.crtruth
    saturated = _bleed(electrons, FULL_WELL)
    dq[saturated] |= DQ_SATURATED
    sci = electrons + rng.normal(0.0, READ_NOISE, shape)
    err = np.sqrt(READ_NOISE**2 + np.maximum(sci, 0.0))
    st = scene.stars
    inside = ((st["x"] >= -0.5) & (st["x"] < nx - 0.5) & (st["y"] >= -0.5)
              & (st["y"] < ny - 0.5))
    peak_e = st["flux"] * exptime * 0.14
    meta = {
        "cr_fraction": cr.fraction,
        "n_cr_events": int(cr.events["x"].size),
        "cr_charge_e": float(cr.events["charge"].sum()),
        "cr_rate_per_1000s": cr_fraction_per_1000s(date) * cr_rate_scale,
        "sky_e": scene.sky_rate * exptime,
        "n_stars": int(inside.sum()),
        "n_saturated_stars": int((inside & (peak_e > FULL_WELL)).sum()),
        "saturated_fraction": float(saturated.mean()),
        "full_well": FULL_WELL,
        "simulator_version": SIMULATOR_VERSION,
        "cr_events": cr.events,
    }
    return Exposure(
        name=name, sci=sci.astype(np.float32), err=err.astype(np.float32), dq=dq,
        crtruth=cr.crtruth, exptime=float(exptime), instrument="ACS", detector="WFC",
        filter="F606W", date_obs=str(date)[:10], gain=GAIN, read_noise=READ_NOISE,
        saturation=DEFAULT_SATURATION, chip=1, source=f"simulated:{name}", meta=meta,
    )


# ========================================================================================
# Groups and datasets
# ========================================================================================

def simulate_group(shape: tuple[int, int] = (512, 512),
                   exptimes: Sequence[float] = (500.0, 1000.0, 2000.0, 3000.0),
                   date: str = "2017-03-01", *, seed: Any = 0,
                   rng: np.random.Generator | None = None, name: str = "sim",
                   cr_rate_scale: float = 1.0) -> Group:
    """N exposures of one pointing (same pixel grid, same stars), kind ``"pointing"``.

    ``seed`` (int, list of ints or ``SeedSequence``) or ``rng`` fixes everything.
    Exposures are named ``{name}_e{j}``; per-exposure truth statistics are in ``meta``
    (``cr_fraction``, ``n_cr_events``, ``n_stars`` …, and ``cr_events``: the event table),
    and ``meta["stars"]`` holds the true star catalogue (x, y, flux in e-/s).
    """
    shape = (int(shape[0]), int(shape[1]))
    exptimes = [float(t) for t in exptimes]
    if not exptimes:
        raise CRBenchConfigError(f"simulate_group {name!r}: no exposure times")
    r_scene, r_det, *r_exp = _rng(seed, rng).spawn(2 + len(exptimes))
    scene = make_scene(shape, r_scene, t_ref=float(np.median(exptimes)))
    detector = make_detector(shape, date, r_det)
    rate = scene_rate_image(scene, shape, t_max=max(exptimes))
    exposures = []
    for j, (t, r) in enumerate(zip(exptimes, r_exp)):
        exp = expose(scene, rate, detector, exptime=t, date=date, name=f"{name}_e{j}", rng=r,
                     cr_rate_scale=cr_rate_scale)
        exp.meta["stars"] = scene.stars
        exposures.append(exp)
    return Group(name=name, exposures=exposures, kind="pointing", date_obs=str(date)[:10])


def tan_wcs_header(shape: tuple[int, int], *, ra: float, dec: float, orientat: float,
                   shift: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    """TAN WCS (0.05"/px, CD matrix, rotated by ``orientat`` deg) with CRVAL = (ra, dec).

    The reference pixel is the chip centre moved by ``shift`` = (dx, dy): the sky point at
    pixel (x, y) of the unshifted frame lies at (x + dx, y + dy) here.
    """
    ny, nx = shape
    scale = PIXEL_SCALE / 3600.0
    th = math.radians(orientat)
    cd = np.array([[-math.cos(th), math.sin(th)], [math.sin(th), math.cos(th)]]) * scale
    return {
        "WCSAXES": 2, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
        "CUNIT1": "deg", "CUNIT2": "deg", "RADESYS": "ICRS",
        # FITS pixels are 1-based: pixel (x, y) 0-based is FITS (x + 1, y + 1)
        "CRPIX1": (nx + 1) / 2.0 + shift[0], "CRPIX2": (ny + 1) / 2.0 + shift[1],
        "CRVAL1": float(ra), "CRVAL2": float(dec),
        "CD1_1": float(cd[0, 0]), "CD1_2": float(cd[0, 1]),
        "CD2_1": float(cd[1, 0]), "CD2_2": float(cd[1, 1]),
    }


DEFAULT_SHIFTS = ((0.0, 0.0), (3.4, -2.7), (-5.25, 6.5))


def simulate_dithered_group(shape: tuple[int, int] = (256, 256),
                            shifts: Sequence[tuple[float, float]] = DEFAULT_SHIFTS,
                            seed: Any = 0, *, exptimes: Sequence[float] | float = 600.0,
                            date: str = "2016-03-15", name: str = "dither",
                            ra: float = 150.1, dec: float = 2.2, orientat: float = 37.0,
                            rng: np.random.Generator | None = None) -> Group:
    """Exposures of one sky field dithered by ``shifts`` = [(dx, dy), …] px, kind "dithered".

    The sky point at pixel (x, y) of exposure 0 lies at (x + dx_k - dx_0, y + dy_k - dy_0)
    of exposure k; ``meta["shift_xy"]`` holds (dx_k, dy_k) and ``wcs_header`` a TAN WCS with
    the same CRVAL and CRPIX moved by the shift.  Every exposure is rendered from the same
    analytic source list at shifted positions (no resampling).  Hot pixels and bad
    columns stay on the detector (same pixels in every exposure).
    """
    shape = (int(shape[0]), int(shape[1]))
    shifts = [(float(dx), float(dy)) for dx, dy in shifts]
    if isinstance(exptimes, (int, float)):
        exptimes = [float(exptimes)] * len(shifts)
    exptimes = [float(t) for t in exptimes]
    if len(exptimes) != len(shifts):
        raise CRBenchConfigError(
            f"simulate_dithered_group: {len(shifts)} shifts but {len(exptimes)} exposure times")
    pad = max(abs(v) for s in shifts for v in s) + 8.0
    r_scene, r_det, *r_exp = _rng(seed, rng).spawn(2 + len(shifts))
    scene = make_scene(shape, r_scene, t_ref=float(np.median(exptimes)), pad=pad)
    detector = make_detector(shape, date, r_det)
    exposures = []
    for j, ((dx, dy), t, r) in enumerate(zip(shifts, exptimes, r_exp)):
        rate = scene_rate_image(scene, shape, t_max=t, shift=(dx, dy))
        exp = expose(scene, rate, detector, exptime=t, date=date, name=f"{name}_e{j}", rng=r)
        exp.wcs_header = tan_wcs_header(shape, ra=ra, dec=dec, orientat=orientat,
                                        shift=(dx, dy))
        exp.meta["shift_xy"] = (dx, dy)
        st = scene.stars
        exp.meta["stars"] = {"x": st["x"] + dx, "y": st["y"] + dy, "flux": st["flux"]}
        exposures.append(exp)
    return Group(name=name, exposures=exposures, kind="dithered", date_obs=str(date)[:10])


def _preset(name: str) -> SimSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise CRBenchConfigError(
            f"unknown simulated dataset {name!r}; presets: {', '.join(sorted(PRESETS))}"
        ) from None


def _group_name(spec: SimSpec, i: int) -> str:
    return f"{spec.name}_g{i:02d}"


def simulate_dataset(name: str = "sim", seed: int | None = None) -> Dataset:
    """Every group of preset ``name`` in memory (seed defaults to the preset's)."""
    spec = _preset(name)
    seed = spec.seed if seed is None else int(seed)
    groups = [
        simulate_group(spec.shape, g.exptimes, g.date,
                       seed=np.random.SeedSequence([seed, i]), name=_group_name(spec, i))
        for i, g in enumerate(spec.groups)
    ]
    return Dataset(name=name, groups=groups, version=SIMULATOR_VERSION, provenance={
        "source": "simulated", "preset": name, "seed": seed,
        "simulator_version": SIMULATOR_VERSION, "shape": list(spec.shape),
    })


# ========================================================================================
# On-disk cache
# ========================================================================================

MANIFEST = "dataset.json"
#: Scalar ``Exposure.meta`` keys stored in the manifest and restored by load_simulated.
_MANIFEST_META = ("cr_fraction", "n_cr_events", "cr_charge_e", "cr_rate_per_1000s", "sky_e",
                  "n_stars", "n_saturated_stars", "saturated_fraction", "full_well")


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _is_current(folder: Path, spec: SimSpec) -> bool:
    m = _read_manifest(folder)
    if not m or m.get("simulator_version") != SIMULATOR_VERSION or m.get("seed") != spec.seed:
        return False
    files = [e["file"] for g in m.get("groups", []) for e in g.get("exposures", [])]
    return bool(files) and all((folder / f).is_file() for f in files)


def _build(spec: SimSpec, dest: Path) -> None:
    """Simulate ``spec`` and write it into the (empty) folder ``dest``, manifest last."""
    groups = []
    if spec.camera:
        if spec.camera not in CAMERA_BUILDERS:
            raise CRBenchConfigError(
                f"preset {spec.name!r} needs the {spec.camera!r} camera simulator; import "
                f"pytest_crbench.datasets.{spec.camera} (the dataset lookup does)")
        groups = CAMERA_BUILDERS[spec.camera](spec, dest)
    for i, g in enumerate(spec.groups if not spec.camera else ()):
        group = simulate_group(spec.shape, g.exptimes, g.date,
                               seed=np.random.SeedSequence([spec.seed, i]),
                               name=_group_name(spec, i))
        entries = []
        for exp in group.exposures:
            fname = f"{exp.name}_flc.fits"
            write_exposures(dest / fname, [exp], extra_primary={
                "SIMULATE": (True, "pytest-crbench simulated data"),
                "SIMVERS": SIMULATOR_VERSION, "SIMSEED": spec.seed,
            })
            entries.append({
                "name": exp.name, "file": fname, "sha256": sha256_file(dest / fname),
                "exptime": exp.exptime, "date_obs": exp.date_obs,
                "meta": {k: exp.meta[k] for k in _MANIFEST_META if k in exp.meta},
            })
        groups.append({"name": group.name, "kind": group.kind, "date_obs": group.date_obs,
                       "exposures": entries})
    manifest = {
        "name": spec.name, "preset": spec.name, "seed": spec.seed,
        "simulator_version": SIMULATOR_VERSION, "shape": list(spec.shape),
        "description": spec.description, "created_by_pid": os.getpid(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "groups": groups,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))


#: Writers of the presets whose ``SimSpec.camera`` is set, by camera name: the modules
#: that simulate those cameras register themselves here (:mod:`pytest_crbench.datasets.csst`).
CAMERA_BUILDERS: dict[str, Any] = {}


def ensure_simulated(name: str, data_dir: Path) -> Path:
    """Make sure preset ``name`` is on disk in ``data_dir/name/``; return that folder.

    Built once into a temporary sibling folder that is renamed into place at the end (an
    interrupted build never leaves a half-built dataset); an existing folder whose manifest
    names another simulator version or seed is rebuilt.  An exclusive ``fcntl.flock`` on
    ``data_dir/.name.lock`` serialises concurrent callers (pytest-xdist workers), so the
    dataset is built once.
    """
    spec = _preset(name)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    folder = data_dir / name
    with open(data_dir / f".{name}.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if _is_current(folder, spec):
                return folder
            # leftovers of builds killed before they could clean up (we hold the lock)
            for stale in data_dir.glob(f".{name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=data_dir))
            try:
                _build(spec, tmp)
                if folder.exists() or folder.is_symlink():
                    old = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-old-", dir=data_dir))
                    os.replace(folder, old / name)
                    os.replace(tmp, folder)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return folder
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _current_manifest(name: str, data_dir: Path) -> tuple[Path, dict]:
    folder = ensure_simulated(name, data_dir)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise CRBenchDataError(f"{folder / MANIFEST}: missing or unreadable manifest")
    return folder, manifest


def _provenance(name: str, folder: Path, manifest: dict) -> dict:
    return {"source": "simulated", "preset": name, "seed": manifest["seed"],
            "simulator_version": manifest["simulator_version"], "path": str(folder),
            "files": {e["file"]: e["sha256"] for g in manifest["groups"]
                      for e in g["exposures"]}}


def _load_group(folder: Path, g: dict, focus: int | None = None) -> Group:
    from pytest_crbench.datasets.fits import lazy_exposure

    exposures = []
    for j, e in enumerate(g["exposures"]):
        path = folder / e["file"]
        if not path.is_file():
            raise CRBenchDataError(f"{path}: listed in {MANIFEST} but missing")
        digest = sha256_file(path)
        if digest != e["sha256"]:
            raise CRBenchDataError(
                f"{path}: sha256 {digest} does not match the manifest ({e['sha256']}); "
                f"delete {folder} to rebuild the simulated dataset")
        if focus is not None and j != focus:
            exposures.append(lazy_exposure(path, name=e["name"]))
            continue
        chips = read_exposures(path, name=e["name"])
        for exp in chips:
            exp.meta.update(e.get("meta", {}))
        exposures.extend(chips)
    return Group(name=g["name"], exposures=exposures, kind=g["kind"],
                 date_obs=g.get("date_obs", ""))


def load_simulated(name: str, data_dir: Path) -> Dataset:
    """:func:`ensure_simulated`, then read every file back (hashes verified) into a Dataset."""
    folder, manifest = _current_manifest(name, data_dir)
    return Dataset(name=name, groups=[_load_group(folder, g) for g in manifest["groups"]],
                   version=manifest["simulator_version"],
                   provenance=_provenance(name, folder, manifest))


def simulated_layout(name: str, data_dir: Path) -> tuple[Dataset, list[dict]]:
    """Preset ``name`` without pixels: ``(dataset, groups)``, the dataset with no groups
    and :func:`load_simulated`'s provenance, and per group its name, kind, date and
    exposure names (only the manifest is read)."""
    folder, manifest = _current_manifest(name, data_dir)
    layout = [{"name": g["name"], "kind": g["kind"], "date_obs": g.get("date_obs", ""),
               "exposures": [e["name"] for e in g["exposures"]],
               "shape": manifest.get("shape")} for g in manifest["groups"]]
    return Dataset(name=name, groups=[], version=manifest["simulator_version"],
                   provenance=_provenance(name, folder, manifest)), layout


def load_simulated_group(name: str, data_dir: Path, index: int, *,
                         focus: int | None = None) -> Group:
    """Group ``index`` of preset ``name`` alone (its files read and verified).

    With ``focus`` only exposure ``focus`` is read into memory; the others are
    :class:`~pytest_crbench.datasets.fits.LazyExposure` s whose rows are read when the
    strip-wise reference of the focus exposure needs them (bounded memory for CSST-size
    chips).
    """
    folder, manifest = _current_manifest(name, data_dir)
    return _load_group(folder, manifest["groups"][index], focus)


__all__ = [
    "SIMULATOR_VERSION", "PRESETS", "SimSpec", "GroupSpec", "Scene", "Detector", "CosmicRays",
    "cr_fraction_per_1000s", "cr_event_rate", "decimal_year", "render_stars",
    "render_galaxies", "make_scene", "make_detector", "sample_cr_events",
    "deposit_cosmic_rays", "deposit_sparse", "simulate_cosmic_rays", "expose", "simulate_group",
    "simulate_dithered_group", "tan_wcs_header", "simulate_dataset", "ensure_simulated",
    "load_simulated", "simulated_layout", "load_simulated_group", "DQ_SATURATED", "DQ_HOT", "DQ_BADCOL", "FULL_WELL", "READ_NOISE",
]
