"""The simulated sky and chip of an ACS/WFC F606W exposure (before cosmic rays).

Sky 0.06-0.10 e-/s/px; stars with a Moffat PSF (beta = 2.5, FWHM ~ 2 px after pixel
integration) rendered by 5x5 sub-pixel sampling, fluxes from a power-law luminosity
function with a few stars per field bright enough to saturate; PSF-softened Sersic
galaxies (n = 0.7-4); the chip's fixed-pattern defects (:class:`CCD`: hot pixels growing
with the date, bad columns).  Part of the simulator
(:mod:`pytest_crbench.datasets.simulate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pytest_crbench.datasets.sim_cosmics import decimal_year

__all__ = ["DQ_BADCOL", "DQ_HOT", "READ_NOISE", "GAIN", "FULL_WELL", "PIXEL_SCALE",
           "MOFFAT_BETA", "MOFFAT_FWHM", "render_stars", "render_galaxies", "Scene",
           "make_scene", "scene_rate_image", "CCD", "make_ccd"]

# --- ACS DQ bits ------------------------------------------------------------------------
DQ_BADCOL = 4          #: bad (dead or hot) column
DQ_HOT = 16            #: hot pixel

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
class CCD:
    """Fixed-pattern defects of one chip on one date: hot pixels and bad columns."""

    hot_index: np.ndarray       # flat pixel indices
    hot_rate: np.ndarray        # e-/s
    badcols: list[tuple[int, int, int, float]] = field(default_factory=list)  # col, y0, y1, e-/s


def make_ccd(shape: tuple[int, int], date: str, rng: np.random.Generator) -> CCD:
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
    return CCD(hot_index, hot_rate, badcols)
