"""Simulated HST ACS/WFC F606W ``_flc``-like exposures: the embedded default dataset.

Every image is one chip in electrons (bias-free): the sky, stars, galaxies and chip
defects of :mod:`pytest_crbench.datasets.sim_scene`, the cosmic rays of
:mod:`pytest_crbench.datasets.sim_cosmics`, Poisson noise on every photo-electron,
Gaussian read noise (4.5 e-) and, for saturated stars, charge bleeding up and down the
column beyond the full well (80,000 e-; those pixels flagged ``DQ_SATURATED``, 256).
The exact injected cosmic-ray charge per pixel is ``Exposure.crtruth``.
``ERR`` is ``sqrt(read_noise**2 + max(sci, 0))`` (what calacs gives).

This module holds the exposures, groups and presets, and the data-cache build
(:func:`ensure_simulated`, :func:`load_simulated`).  Public API: :class:`SimSpec`,
:data:`PRESETS`, :data:`SIMULATOR_VERSION`, :func:`simulate_group`,
:func:`simulate_dithered_group`, :func:`simulate_dataset`, :func:`ensure_simulated`,
:func:`load_simulated`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pytest_crbench._util import sha256_file
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.datasets.fits import read_exposures, write_exposures
from pytest_crbench.datasets.sim_cosmics import cr_fraction_per_1000s, simulate_cosmic_rays
from pytest_crbench.datasets.sim_scene import (CCD, DQ_BADCOL, DQ_HOT, FULL_WELL, GAIN,
                                               PIXEL_SCALE, READ_NOISE, Scene, make_ccd,
                                               make_scene, scene_rate_image)
from pytest_crbench.science.exposures import (DEFAULT_SATURATION, DQ_SATURATED, Dataset,
                                              Exposure, Group)

#: Bump whenever the simulated pixels (or the file layout) change; goes into provenance
#: and into every manifest, and a cached dataset with another version is rebuilt.
SIMULATOR_VERSION = "1.0.0"

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

#: The paper's group size: 6 exposures per group (method.md section 1): the four
#: exposure times of each default group and two more between them.
_PAPER_GROUPS = tuple(
    GroupSpec(g.date, tuple(sorted(g.exptimes + extra)))
    for g, extra in zip(_DEFAULT_GROUPS, ((500.0, 1300.0), (700.0, 1700.0), (900.0, 2100.0),
                                          (1400.0, 3000.0), (1700.0, 3700.0),
                                          (2200.0, 4900.0)))
)

PRESETS: dict[str, SimSpec] = {
    "sim": SimSpec(
        "sim", (512, 512), _PAPER_GROUPS, seed=20230501,
        description="6 groups x 6 exposures of 512x512, 2010-09..2019-08, CR density ~1-15 %",
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


def _rng(seed, rng) -> np.random.Generator:
    if rng is not None:
        return rng
    return np.random.default_rng(seed)


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


def expose(scene: Scene, source_rate: np.ndarray, ccd: CCD, *, exptime: float,
           date: str, name: str, rng: np.random.Generator,
           cr_rate_scale: float = 1.0) -> Exposure:
    """One exposure: photons (Poisson) + dark/hot pixels + cosmic rays, bleed, read noise."""
    shape = source_rate.shape
    ny, nx = shape
    expected = (source_rate + scene.sky_rate) * exptime
    flat = expected.reshape(-1)
    flat[ccd.hot_index] += ccd.hot_rate * exptime
    dq = np.zeros(shape, np.int32)
    dq.reshape(-1)[ccd.hot_index] |= DQ_HOT
    for col, y0, y1, rate in ccd.badcols:
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
    ccd = make_ccd(shape, date, r_det)
    rate = scene_rate_image(scene, shape, t_max=max(exptimes))
    exposures = []
    for j, (t, r) in enumerate(zip(exptimes, r_exp)):
        exp = expose(scene, rate, ccd, exptime=t, date=date, name=f"{name}_e{j}", rng=r,
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
    ccd = make_ccd(shape, date, r_det)
    exposures = []
    for j, ((dx, dy), t, r) in enumerate(zip(shifts, exptimes, r_exp)):
        rate = scene_rate_image(scene, shape, t_max=t, shift=(dx, dy))
        exp = expose(scene, rate, ccd, exptime=t, date=date, name=f"{name}_e{j}", rng=r)
        exp.wcs_header = tan_wcs_header(shape, ra=ra, dec=dec, orientat=orientat,
                                        shift=(dx, dy))
        exp.meta["shift_xy"] = (dx, dy)
        st = scene.stars
        exp.meta["stars"] = {"x": st["x"] + dx, "y": st["y"] + dy, "flux": st["flux"]}
        exposures.append(exp)
    return Group(name=name, exposures=exposures, kind="dithered", date_obs=str(date)[:10])


def split_dataset_spec(name: str) -> tuple[str, dict[str, str]]:
    """``"sim@seed=7"`` → ``("sim", {"seed": "7"})``; a plain name has no options."""
    base, sep, rest = str(name).partition("@")
    if not sep:
        return base, {}
    options = {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise CRBenchConfigError(
                f"dataset {name!r}: expected options as NAME@key=value, got {part!r}")
        options[key.strip()] = value.strip()
    return base, options


def is_simulated(name: str) -> bool:
    """True for a preset name, with or without ``@seed=N`` (nothing is validated)."""
    return str(name).partition("@")[0] in PRESETS


def preset_spec(name: str) -> SimSpec:
    """The :class:`SimSpec` of ``name``: a preset, or ``<preset>@seed=N`` — the same
    preset drawn with another seed (an independent draw of the same design).  The
    plain preset name keeps its own seed and data."""
    base, options = split_dataset_spec(name)
    try:
        spec = PRESETS[base]
    except KeyError:
        raise CRBenchConfigError(
            f"unknown simulated dataset {base!r}; presets: {', '.join(sorted(PRESETS))}"
        ) from None
    unknown = sorted(set(options) - {"seed"})
    if unknown:
        raise CRBenchConfigError(f"dataset {name!r}: unknown option(s) {', '.join(unknown)}; "
                                 "a simulated dataset takes only seed (e.g. sim@seed=7)")
    if "seed" not in options:
        return spec
    try:
        seed = int(options["seed"])
    except ValueError:
        raise CRBenchConfigError(
            f"dataset {name!r}: seed must be an integer, got {options['seed']!r}") from None
    if seed < 0:
        raise CRBenchConfigError(f"dataset {name!r}: seed must be >= 0, got {seed}")
    return replace(spec, name=f"{base}@seed={seed}", seed=seed)



def folder_name(spec: SimSpec) -> str:
    """The cache folder (and group-name prefix) of ``spec``: ``sim``, ``sim-seed7``."""
    return spec.name.replace("@seed=", "-seed")


def _group_name(spec: SimSpec, i: int) -> str:
    return f"{folder_name(spec)}_g{i:02d}"


def simulate_dataset(name: str = "sim", seed: int | None = None) -> Dataset:
    """Every group of preset ``name`` in memory (seed defaults to the preset's)."""
    spec = preset_spec(name)
    seed = spec.seed if seed is None else int(seed)
    groups = [
        simulate_group(spec.shape, g.exptimes, g.date,
                       seed=np.random.SeedSequence([seed, i]), name=_group_name(spec, i))
        for i, g in enumerate(spec.groups)
    ]
    return Dataset(name=name, groups=groups, version=SIMULATOR_VERSION, provenance={
        "source": "simulated", "preset": split_dataset_spec(name)[0], "seed": seed,
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
    layout = [(g.get("date_obs"), [e.get("exptime") for e in g.get("exposures", [])])
              for g in m.get("groups", [])]
    if m.get("shape") != list(spec.shape) or layout != [
            (g.date[:10], list(g.exptimes)) for g in spec.groups]:
        return False  # the preset's groups changed (sizes, dates, exposure times)
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
        "name": spec.name, "preset": split_dataset_spec(spec.name)[0], "seed": spec.seed,
        "simulator_version": SIMULATOR_VERSION, "shape": list(spec.shape),
        "description": spec.description, "created_by_pid": os.getpid(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "groups": groups,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1))


#: Writers of the presets whose ``SimSpec.camera`` is set, by camera name: the modules
#: that simulate those cameras register themselves here (:mod:`pytest_crbench.datasets.csst`).
CAMERA_BUILDERS: dict[str, Any] = {}


def ensure_simulated(name: str, data_dir: Path, *, lock_timeout: float | None = None,
                     notify=None) -> Path:
    """Make sure preset ``name`` is on disk in ``data_dir/name/``; return that folder.

    Built once into a temporary sibling folder that is renamed into place at the end (an
    interrupted build never leaves a half-built dataset); an existing folder whose manifest
    names another simulator version or seed is rebuilt.  An exclusive ``fcntl.flock`` on
    ``data_dir/.name.lock`` serialises concurrent callers (pytest-xdist workers), so the
    dataset is built once (a lock held too long: see
    :func:`pytest_crbench.datasets.cache.file_lock`).  A current dataset in a read-only
    folder is used as it is.
    """
    from pytest_crbench.datasets.cache import ensure_dir, file_lock

    spec = preset_spec(name)
    data_dir = ensure_dir(Path(data_dir))
    name = folder_name(spec)
    folder = data_dir / name
    with file_lock(data_dir, name, path=data_dir / f".{name}.lock", timeout=lock_timeout,
                   notify=notify):
        if _is_current(folder, spec):
            return folder
        if not os.access(data_dir, os.W_OK):
            raise CRBenchDataError(
                f"{folder}: the simulated dataset {name!r} is missing or out of date and the "
                f"data folder {data_dir} is read-only; build it once from a writable "
                "account (pytest --crbench --crbench-dataset " + name + ")")
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


def _current_manifest(name: str, data_dir: Path, *, lock_timeout: float | None = None,
                      notify=None) -> tuple[Path, dict]:
    folder = ensure_simulated(name, data_dir, lock_timeout=lock_timeout, notify=notify)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise CRBenchDataError(f"{folder / MANIFEST}: missing or unreadable manifest")
    return folder, manifest


def _provenance(name: str, folder: Path, manifest: dict) -> dict:
    return {"source": "simulated", "preset": split_dataset_spec(name)[0],
            "seed": manifest["seed"],
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


def load_simulated(name: str, data_dir: Path, *, lock_timeout: float | None = None,
                   notify=None) -> Dataset:
    """:func:`ensure_simulated`, then read every file back (hashes verified) into a Dataset."""
    folder, manifest = _current_manifest(name, data_dir, lock_timeout=lock_timeout,
                                         notify=notify)
    return Dataset(name=name, groups=[_load_group(folder, g) for g in manifest["groups"]],
                   version=manifest["simulator_version"],
                   provenance=_provenance(name, folder, manifest))


def simulated_layout(name: str, data_dir: Path, *, lock_timeout: float | None = None,
                     notify=None) -> tuple[Dataset, list[dict]]:
    """Preset ``name`` without pixels: ``(dataset, groups)``, the dataset with no groups
    and :func:`load_simulated`'s provenance, and per group its name, kind, date and
    exposure names (only the manifest is read)."""
    folder, manifest = _current_manifest(name, data_dir, lock_timeout=lock_timeout,
                                         notify=notify)
    layout = [{"name": g["name"], "kind": g["kind"], "date_obs": g.get("date_obs", ""),
               "exposures": [e["name"] for e in g["exposures"]],
               "shape": manifest.get("shape")} for g in manifest["groups"]]
    return Dataset(name=name, groups=[], version=manifest["simulator_version"],
                   provenance=_provenance(name, folder, manifest)), layout


def load_simulated_group(name: str, data_dir: Path, index: int, *,
                         focus: int | None = None, lock_timeout: float | None = None,
                         notify=None) -> Group:
    """Group ``index`` of preset ``name`` alone (its files read and verified).

    With ``focus`` only exposure ``focus`` is read into memory; the others are
    :class:`~pytest_crbench.datasets.fits.LazyExposure` s whose rows are read when the
    strip-wise reference of the focus exposure needs them (bounded memory for CSST-size
    chips).
    """
    folder, manifest = _current_manifest(name, data_dir, lock_timeout=lock_timeout,
                                         notify=notify)
    return _load_group(folder, manifest["groups"][index], focus)


__all__ = [
    "SIMULATOR_VERSION", "PRESETS", "SimSpec", "GroupSpec", "expose", "simulate_group",
    "simulate_dithered_group", "tan_wcs_header", "simulate_dataset", "ensure_simulated",
    "preset_spec", "split_dataset_spec", "is_simulated", "folder_name", "load_simulated",
    "simulated_layout", "load_simulated_group", "CAMERA_BUILDERS",
]
