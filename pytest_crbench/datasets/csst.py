"""CSST-size simulated chips, generated and written strip by strip (bounded memory).

The CSST main survey camera has 30 detectors of 9216 × 9232 pixels; a chip is 85
Mpix, and one float64 full-frame temporary alone is 0.68 GB.  :func:`build_chunked`
therefore never holds a full chip: the scene (stars, galaxies), the fixed-pattern
defects and the cosmic-ray events are drawn for the whole chip as small tables, and the
pixels are produced in strips of rows that are written straight into the FITS files.

Deterministic and independent of the strip size: the photon and read noise of every
block of :data:`BLOCK_ROWS` rows come from their own seeded generator
(``SeedSequence([seed, group, exposure, block])``); a strip is generated together with
:data:`HALO_BLOCKS` blocks above and below it (regenerated bit for bit), so that charge
bleeding from saturated stars along a column is computed on the same pixels whichever
strip holds them, and only the strip's own rows are kept.  Cosmic-ray charge is
deposited once per exposure as a sparse list of (pixel, charge) and added strip by strip.

Detector facts are those of :class:`Camera`; :data:`CSST` states the assumptions used
for the CSST preset (README "At archive scale").  The files have the layout of the other
simulated presets (SCI, ERR, DQ, CRTRUTH in electrons), so every reader works on them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytest_crbench._util import sha256_file
from pytest_crbench.datasets import sim_cosmics as cosmics
from pytest_crbench.datasets import sim_scene as simscene
from pytest_crbench.datasets import simulate as sim

#: Rows per noise block (the unit of seeding).
BLOCK_ROWS = 128
#: Blocks generated beyond each strip edge for the column bleed of saturated stars.
HALO_BLOCKS = 2
#: Rows per written strip.
STRIP_ROWS = 1024


@dataclass(frozen=True)
class Camera:
    """Detector facts of a simulated camera (electrons, seconds)."""

    name: str
    instrument: str
    detector: str
    filter: str
    read_noise: float
    dark: float  # e-/s/px
    gain: float  # e-/DN (header only: the data are in electrons)
    full_well: float
    pixel_um: float
    pixel_scale: float  # arcsec/px
    #: cosmic-ray events per pixel relative to ACS/WFC (pixel area ratio: the same
    #: particle flux per cm² falls on smaller pixels)
    cr_rate_scale: float


#: CSST main survey camera, as assumed here (sources and caveats: README "At archive
#: scale"): 10 µm pixels of 0.074"; read noise 5 e- and dark current 0.02 e-/s/px
#: (the survey camera's specified upper limits); gain 1.1 e-/DN; full well 90,000 e-;
#: the ACS/WFC cosmic-ray rate per unit detector area (a low-Earth orbit like HST's),
#: hence (10/15)² of ACS's rate per pixel.  Sky, stars and cosmic-ray shapes are those of
#: the ACS simulator.
CSST = Camera("csst-msc", "CSST", "MSC", "SIM-CSST", read_noise=5.0, dark=0.02, gain=1.1,
              full_well=90000.0, pixel_um=10.0, pixel_scale=0.074,
              cr_rate_scale=(10.0 / 15.0) ** 2)
#: cameras by the ``SimSpec.camera`` name of a preset
CAMERAS = {"csst": CSST}


def _fits_header(cards: list[tuple[str, object, str]]) -> bytes:
    from astropy.io import fits

    h = fits.Header()
    for key, value, comment in cards:
        h[key] = (value, comment)
    return h.tostring().encode("ascii")


class _ChunkedFits:
    """A FITS file of fixed-size image extensions whose data are written in row strips.

    The headers are written first, then each strip with ``os.pwrite`` at its offset
    (big-endian, as FITS requires): no array of the full image is ever built.
    """

    _BITPIX = {np.dtype(">f4"): -32, np.dtype(">i2"): 16}

    def __init__(self, path: Path, primary: list, extensions: list[tuple[str, str, list]],
                 shape: tuple[int, int]):
        ny, nx = shape
        self.path, self.shape = path, shape
        self.offsets: dict[str, tuple[int, np.dtype]] = {}
        chunks = [_fits_header([("SIMPLE", True, ""), ("BITPIX", 8, ""), ("NAXIS", 0, ""),
                                ("EXTEND", True, ""), *primary])]
        pos = len(chunks[0])
        for name, dtype, cards in extensions:
            dt = np.dtype(dtype)
            head = _fits_header([("XTENSION", "IMAGE", ""), ("BITPIX", self._BITPIX[dt], ""),
                                 ("NAXIS", 2, ""), ("NAXIS1", nx, ""), ("NAXIS2", ny, ""),
                                 ("PCOUNT", 0, ""), ("GCOUNT", 1, ""),
                                 ("EXTNAME", name, ""), ("EXTVER", 1, ""), *cards])
            pos += len(head)
            chunks.append((head, pos, dt))
            nbytes = nx * ny * dt.itemsize
            pos += nbytes + (-nbytes % 2880)
        self.size = pos
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(self.fd, chunks[0], 0)
        for (name, _, _), (head, start, dt) in zip(extensions, chunks[1:]):
            os.pwrite(self.fd, head, start - len(head))
            self.offsets[name] = (start, dt)
        os.ftruncate(self.fd, self.size)  # data padding is zeros, as FITS wants

    def write(self, name: str, row0: int, rows: np.ndarray) -> None:
        start, dt = self.offsets[name]
        data = np.ascontiguousarray(rows, dtype=dt)
        os.pwrite(self.fd, data.tobytes(), start + row0 * self.shape[1] * dt.itemsize)

    def close(self) -> None:
        os.close(self.fd)


def _cr_sparse(shape, exptime: float, date: str, camera: Camera,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Cosmic rays of one exposure as sorted flat pixel indices and charges (e-)."""
    lam = cosmics.cr_event_rate(date) * camera.cr_rate_scale * exptime * shape[0] * shape[1]
    events = cosmics.sample_cr_events(int(rng.poisson(lam)), shape, rng)
    pix, charge, _ = cosmics.deposit_sparse(shape, events)
    return pix, charge, int(events["x"].size)


def _strip_sources(scene, shape, r0: int, r1: int, t_max: float) -> np.ndarray:
    """Noise-free source rate (e-/s, float64) of rows r0:r1, from sources near them."""
    ny, nx = shape
    st = scene.stars
    halves = simscene._star_half_size(st["flux"] * t_max)
    near = (st["y"] + halves + 1 >= r0) & (st["y"] - halves - 1 < r1)
    img = simscene.render_stars((r1 - r0, nx), st["x"][near], st["y"][near] - r0,
                           st["flux"][near], max_counts=st["flux"][near] * t_max)
    gal = scene.galaxies
    gnear = (gal["y"] + 50 >= r0) & (gal["y"] - 50 < r1)
    sub = {k: v[gnear] for k, v in gal.items()}
    return img + simscene.render_galaxies((r1 - r0, nx), sub, shift=(0.0, -float(r0)))


def _block_pixels(expected: np.ndarray, cr: np.ndarray, ss: np.random.SeedSequence,
                  camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Photo-electrons + CR charge (before bleed) and read noise of one block."""
    rng = np.random.default_rng(ss)
    electrons = rng.poisson(expected).astype(np.float64) + cr
    return electrons, rng.normal(0.0, camera.read_noise, expected.shape)


def build_chunked(spec, dest: Path, camera: Camera = CSST, *,
                  strip_rows: int = STRIP_ROWS) -> list[dict]:
    """Write every group of ``spec`` into ``dest`` strip by strip; return manifest groups.

    One file ``<exposure>_flc.fits`` per exposure, as :func:`simulate._build` writes.
    """
    ny, nx = spec.shape
    strip_rows = max(BLOCK_ROWS, strip_rows // BLOCK_ROWS * BLOCK_ROWS)
    n_blocks = math.ceil(ny / BLOCK_ROWS)
    groups = []
    for gi, g in enumerate(spec.groups):
        root = np.random.SeedSequence([spec.seed, gi])
        r_scene, r_det, *r_exp = root.spawn(2 + len(g.exptimes))
        rng_scene = np.random.default_rng(r_scene)
        scene = simscene.make_scene(spec.shape, rng_scene, t_ref=float(np.median(g.exptimes)))
        detector = simscene.make_ccd(spec.shape, g.date, np.random.default_rng(r_det))
        hot_sorted = np.argsort(detector.hot_index)
        hot_index, hot_rate = detector.hot_index[hot_sorted], detector.hot_rate[hot_sorted]
        gname = sim._group_name(spec, gi)
        exps = []
        for j, (t, ss) in enumerate(zip(g.exptimes, r_exp)):
            cr_ss, noise_ss = ss.spawn(2)
            pix, charge, n_events = _cr_sparse(spec.shape, t, g.date, camera,
                                               np.random.default_rng(cr_ss))
            block_ss = noise_ss.spawn(n_blocks)
            exps.append({"name": f"{gname}_e{j}", "exptime": float(t), "pix": pix,
                         "charge": charge, "n_events": n_events, "blocks": block_ss,
                         "stats": {"cr_pixels": 0, "saturated": 0}})
        files = []
        for e in exps:
            primary = [("INSTRUME", camera.instrument, ""), ("DETECTOR", camera.detector, ""),
                       ("FILTER", camera.filter, ""), ("EXPTIME", e["exptime"], "s"),
                       ("DATE-OBS", g.date, ""), ("CCDGAIN", camera.gain, "e-/DN"),
                       ("READNSE", camera.read_noise, "e-"),
                       ("SATURATE", camera.full_well * 0.875, "e-"),
                       ("NEXTEND", 4, ""), ("SIMULATE", True, "pytest-crbench simulated data"),
                       ("SIMVERS", sim.SIMULATOR_VERSION, ""), ("SIMSEED", spec.seed, ""),
                       ("CAMERA", camera.name, "simulated camera model")]
            electrons = [("BUNIT", "ELECTRONS", ""), ("CCDCHIP", 1, "")]
            files.append(_ChunkedFits(dest / f"{e['name']}_flc.fits", primary, [
                ("SCI", ">f4", electrons), ("ERR", ">f4", [("BUNIT", "ELECTRONS", "")]),
                ("DQ", ">i2", []), ("CRTRUTH", ">f4", [("BUNIT", "ELECTRONS", "")])],
                spec.shape))
        try:
            t_max = max(g.exptimes)
            for r0 in range(0, ny, strip_rows):
                r1 = min(ny, r0 + strip_rows)
                b0 = max(0, r0 // BLOCK_ROWS - HALO_BLOCKS)
                b1 = min(n_blocks, math.ceil(r1 / BLOCK_ROWS) + HALO_BLOCKS)
                a0, a1 = b0 * BLOCK_ROWS, min(ny, b1 * BLOCK_ROWS)
                rate = _strip_sources(scene, spec.shape, a0, a1, t_max) + scene.sky_rate
                rate += camera.dark
                lo, hi = np.searchsorted(hot_index, [a0 * nx, a1 * nx])
                hot_pix = hot_index[lo:hi] - a0 * nx
                dq = np.zeros((a1 - a0, nx), np.int16)
                dq.reshape(-1)[hot_pix] |= simscene.DQ_HOT
                for col, y0, y1, _ in detector.badcols:
                    dq[max(y0, a0) - a0:max(min(y1, a1), a0) - a0, col] |= simscene.DQ_BADCOL
                keep = slice(r0 - a0, r1 - a0)
                for e, fh in zip(exps, files):
                    t = e["exptime"]
                    expected = rate * t
                    expected.reshape(-1)[hot_pix] += hot_rate[lo:hi] * t
                    for col, y0, y1, bad_rate in detector.badcols:
                        s0, s1 = max(y0, a0) - a0, max(min(y1, a1), a0) - a0
                        expected[s0:s1, col] = bad_rate * t + 0.3 * scene.sky_rate * t
                    plo, phi = np.searchsorted(e["pix"], [a0 * nx, a1 * nx])
                    cr = np.zeros((a1 - a0) * nx)
                    np.add.at(cr, e["pix"][plo:phi] - a0 * nx, e["charge"][plo:phi])
                    cr = cr.reshape(a1 - a0, nx)
                    electrons = np.empty_like(expected)
                    noise = np.empty_like(expected)
                    for b in range(b0, b1):
                        s = slice(b * BLOCK_ROWS - a0, min(a1, (b + 1) * BLOCK_ROWS) - a0)
                        electrons[s], noise[s] = _block_pixels(expected[s], cr[s],
                                                               e["blocks"][b], camera)
                    saturated = sim._bleed(electrons, camera.full_well)
                    sci = (electrons + noise)[keep]
                    d = dq[keep] | np.where(saturated[keep], sim.DQ_SATURATED, 0).astype(np.int16)
                    fh.write("SCI", r0, sci)
                    fh.write("ERR", r0, np.sqrt(camera.read_noise ** 2 + np.maximum(sci, 0.0)))
                    fh.write("DQ", r0, d)
                    fh.write("CRTRUTH", r0, cr[keep])
                    e["stats"]["cr_pixels"] += int(np.count_nonzero(cr[keep]))
                    e["stats"]["saturated"] += int(np.count_nonzero(saturated[keep]))
        finally:
            for fh in files:
                fh.close()
        entries = []
        for e in exps:
            fname = f"{e['name']}_flc.fits"
            st = e["stats"]
            entries.append({
                "name": e["name"], "file": fname, "sha256": sha256_file(dest / fname),
                "exptime": e["exptime"], "date_obs": g.date,
                "meta": {"cr_fraction": st["cr_pixels"] / (ny * nx),
                         "n_cr_events": e["n_events"], "cr_charge_e": float(e["charge"].sum()),
                         "cr_rate_per_1000s": cosmics.cr_fraction_per_1000s(g.date)
                         * camera.cr_rate_scale,
                         "sky_e": (scene.sky_rate + camera.dark) * e["exptime"],
                         "saturated_fraction": st["saturated"] / (ny * nx),
                         "full_well": camera.full_well}})
        groups.append({"name": gname, "kind": "pointing", "date_obs": g.date,
                       "exposures": entries})
    return groups


for _name, _camera in CAMERAS.items():
    sim.CAMERA_BUILDERS[_name] = (lambda spec, dest, camera=_camera:
                                  build_chunked(spec, dest, camera))

__all__ = ["Camera", "CSST", "CAMERAS", "build_chunked", "BLOCK_ROWS", "STRIP_ROWS"]
