"""Tests of the simulator (pytest_crbench.datasets.simulate): physics, determinism and the disk cache."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from pytest_crbench.datasets import sim_cosmics as cosmics
from pytest_crbench.datasets import sim_scene as sky
from pytest_crbench.datasets import simulate as sim
from pytest_crbench.science.exposures import DQ_SATURATED
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.datasets.fits import read_exposures, write_exposures

MID_CYCLE = "2017-02-24"  # cos phase = 0: the un-modulated rate


@pytest.fixture(scope="module")
def default_dataset():
    return sim.simulate_dataset("sim")


def _arrays(group):
    return [(e.sci, e.err, e.dq, e.crtruth) for e in group.exposures]


# --- determinism -------------------------------------------------------------------------

def test_same_seed_same_arrays_and_different_seed_different():
    a = sim.simulate_group((96, 80), (400.0, 1500.0), "2013-05-01", seed=7, name="g")
    b = sim.simulate_group((96, 80), (400.0, 1500.0), "2013-05-01", seed=7, name="g")
    c = sim.simulate_group((96, 80), (400.0, 1500.0), "2013-05-01", seed=8, name="g")
    for xa, xb in zip(_arrays(a), _arrays(b)):
        for u, v in zip(xa, xb):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.exposures[0].sci, c.exposures[0].sci)
    assert not np.array_equal(a.exposures[0].crtruth, c.exposures[0].crtruth)
    assert a.exposures[0].shape == (96, 80)
    # the stars are the same in every exposure of a group, the cosmic rays are not
    e0, e1 = a.exposures
    assert e0.meta["stars"] is e1.meta["stars"]
    assert not np.array_equal(e0.crtruth > 0, e1.crtruth > 0)


def test_dataset_determinism_and_provenance():
    d1 = sim.simulate_dataset("sim-tiny")
    d2 = sim.simulate_dataset("sim-tiny")
    d3 = sim.simulate_dataset("sim-tiny", seed=123)
    spec = sim.PRESETS["sim-tiny"]
    assert [g.name for g in d1.groups] == [g.name for g in d2.groups]
    assert len(d1.groups) == spec.n_groups
    for g1, g2, g3 in zip(d1.groups, d2.groups, d3.groups):
        np.testing.assert_array_equal(g1.exposures[0].sci, g2.exposures[0].sci)
        assert not np.array_equal(g1.exposures[0].sci, g3.exposures[0].sci)
    assert d1.provenance["seed"] == spec.seed and d3.provenance["seed"] == 123
    assert d1.provenance["simulator_version"] == sim.SIMULATOR_VERSION
    assert d1.provenance["preset"] == "sim-tiny"


def test_unknown_preset_is_a_config_error(tmp_path):
    with pytest.raises(CRBenchConfigError, match="sim-nope"):
        sim.simulate_dataset("sim-nope")
    with pytest.raises(CRBenchConfigError, match="presets"):
        sim.ensure_simulated("sim-nope", tmp_path)


# --- cosmic rays ---------------------------------------------------------------------------

def test_cosmic_ray_statistics_follow_acs_isr_2002_07():
    rng = np.random.default_rng(11)
    fractions = [cosmics.simulate_cosmic_rays((512, 512), 1000.0, date=MID_CYCLE, rng=rng).fraction
                 for _ in range(3)]
    assert 0.015 <= np.mean(fractions) <= 0.03, fractions
    events = cosmics.deposit_cosmic_rays((1024, 1024),
                                     cosmics.sample_cr_events(20000, (1024, 1024), rng)).events
    charge, npix = events["charge"], events["npix"]
    assert 850 <= np.median(charge) <= 1200          # median near 1000 e-
    assert np.mean(charge < 500) < 0.02              # sharp cut-off near 500 e-
    assert 4 <= np.median(npix) <= 6                 # 4-5 pixels per event ...
    assert np.percentile(npix, 99) >= 15             # ... with a long tail of tracks
    assert np.max(events["length"]) > 20
    # diffusion dominates: a direct hit covers 1-2 pixels, the events cover more
    short = events["length"] < 0.5
    assert np.median(npix[short]) >= 4


def test_cr_rate_follows_the_solar_cycle():
    r_min = cosmics.cr_fraction_per_1000s("2019-11-20")   # solar minimum: highest rate
    r_max = cosmics.cr_fraction_per_1000s("2014-05-01")   # solar maximum: lowest rate
    r_mid = cosmics.cr_fraction_per_1000s(MID_CYCLE)
    assert r_min == pytest.approx(1.25 * r_mid, rel=0.01)
    assert r_max == pytest.approx(0.75 * r_mid, rel=0.01)
    assert 0.015 <= r_mid <= 0.03


@settings(max_examples=40, deadline=None)
@given(ny=st.integers(4, 48), nx=st.integers(4, 48), n=st.integers(0, 60),
       seed=st.integers(0, 2**32 - 1))
def test_cr_charge_is_conserved(ny, nx, n, seed):
    rng = np.random.default_rng(seed)
    drawn = cosmics.sample_cr_events(n, (ny, nx), rng)
    cr = cosmics.deposit_cosmic_rays((ny, nx), drawn)
    ev = cr.events
    # every event's in-image charge lands in crtruth, none is created
    assert cr.crtruth.sum(dtype=np.float64) == pytest.approx(ev["charge"].sum(), rel=1e-5,
                                                               abs=1e-2)
    assert np.all(ev["charge"] <= drawn["charge"] * (1 + 1e-9))
    assert np.all(cr.crtruth >= 0)
    assert ev["npix"].size == n and np.all(ev["npix"] >= 1)
    assert np.count_nonzero(cr.crtruth) <= ev["npix"].sum()
    # events whose whole track and diffusion halo are inside keep all their charge
    reach = ev["length"] / 2 + 2
    inside = ((drawn["x"] - reach >= 0) & (drawn["x"] + reach <= nx - 1)
              & (drawn["y"] - reach >= 0) & (drawn["y"] + reach <= ny - 1))
    np.testing.assert_allclose(ev["charge"][inside], drawn["charge"][inside], rtol=1e-9)


def test_exposure_crtruth_is_in_sci_and_err_follows_calacs():
    g = sim.simulate_group((128, 128), (2000.0,), MID_CYCLE, seed=5)
    e = g.exposures[0]
    assert e.crtruth.dtype == np.float32 and e.crtruth.shape == e.shape
    assert e.meta["n_cr_events"] > 0
    assert e.meta["cr_fraction"] == pytest.approx(np.mean(e.crtruth > 0))
    np.testing.assert_allclose(e.err, np.sqrt(e.read_noise**2 + np.maximum(e.sci, 0)),
                               rtol=1e-5)
    # a CR pixel is brighter than in the clean image by its injected charge (no bleed here)
    hit = (e.crtruth > 200) & (e.dq == 0)
    assert hit.sum() > 20
    assert np.median(e.sci[hit] - e.crtruth[hit]) < np.median(e.sci[hit])
    assert (e.instrument, e.detector, e.filter) == ("ACS", "WFC", "F606W")


# --- stars, saturation, detector defects ---------------------------------------------------

def _fwhm_1d(profile: np.ndarray, centre: int) -> float:
    half = profile[centre] / 2
    r = centre
    while profile[r + 1] > half:
        r += 1
    right = r + (profile[r] - half) / (profile[r] - profile[r + 1])
    left = centre
    while profile[left - 1] > half:
        left -= 1
    left = left - (profile[left] - half) / (profile[left] - profile[left - 1])
    return right - left


def test_psf_fwhm_is_about_two_pixels_and_flux_is_kept():
    img = sky.render_stars((61, 61), np.array([30.0]), np.array([30.0]), np.array([1e5]))
    assert 1.8 <= _fwhm_1d(img[30, :], 30) <= 2.2
    assert 1.8 <= _fwhm_1d(img[:, 30], 30) <= 2.2
    assert img.sum() == pytest.approx(1e5, rel=0.02)
    assert np.unravel_index(np.argmax(img), img.shape) == (30, 30)
    # sub-pixel sampling: the flux-weighted centroid follows a sub-pixel shift exactly
    img2 = sky.render_stars((61, 61), np.array([30.3]), np.array([29.8]), np.array([1e5]))
    yy, xx = np.mgrid[:61, :61]
    core = (abs(xx - 30) <= 10) & (abs(yy - 30) <= 10)
    w = img2 * core
    assert (w * xx).sum() / w.sum() == pytest.approx(30.3, abs=0.02)
    assert (w * yy).sum() / w.sum() == pytest.approx(29.8, abs=0.02)


def test_measured_star_size_on_a_simulated_exposure():
    sep = pytest.importorskip("sep")
    g = sim.simulate_group((256, 256), (1000.0,), MID_CYCLE, seed=3)
    e = g.exposures[0]
    clean = np.ascontiguousarray(e.sci - e.crtruth, dtype=np.float32)
    bkg = sep.Background(clean, mask=e.dq != 0)
    data = clean - bkg.back()
    objs = sep.extract(data, 3.0, err=bkg.globalrms, mask=e.dq != 0, minarea=16)
    m = 32
    ok = ((objs["x"] > m) & (objs["x"] < 256 - m) & (objs["y"] > m) & (objs["y"] < 256 - m)
          & (objs["b"] / objs["a"] > 0.8) & (objs["peak"] < 30000) & (objs["peak"] > 500)
          & (objs["flag"] == 0))
    assert ok.sum() >= 5
    r_half, _ = sep.flux_radius(data, objs["x"][ok], objs["y"][ok], 6.0 * np.ones(ok.sum()),
                                0.5, subpix=5)
    # Moffat beta=2.5, FWHM 2 px: half-light radius ~1.3 px (galaxies and blends are larger)
    assert 1.0 <= np.median(r_half) <= 1.7


def test_saturated_stars_bleed_along_columns_and_are_flagged():
    g = sim.simulate_group((256, 256), (3000.0,), MID_CYCLE, seed=21)
    e = g.exposures[0]
    sat = (e.dq & DQ_SATURATED) > 0
    assert sat.any()
    lab, n = ndimage.label(sat)
    shapes = [(s[0].stop - s[0].start, s[1].stop - s[1].start)
              for s in ndimage.find_objects(lab)]
    assert any(h >= 3 * w and h >= 10 for h, w in shapes), shapes  # trails along columns
    # flagged pixels sit at full well (plus read noise); nothing unflagged exceeds it
    assert np.all(np.abs(e.sci[sat] - sky.FULL_WELL) < 8 * sky.READ_NOISE)
    assert np.all(e.sci[~sat] < sky.FULL_WELL + 8 * sky.READ_NOISE)
    assert e.meta["n_saturated_stars"] >= 1


def test_saturation_conserves_charge_along_the_column():
    img = np.zeros((60, 3))
    img[30, 1] = 10 * sky.FULL_WELL
    before = img.sum()
    sat = sim._bleed(img, sky.FULL_WELL)
    assert img.sum() == pytest.approx(before)
    assert img.max() <= sky.FULL_WELL
    # 9 x full well of excess: 4.5 up, 4.5 down -> 9 full pixels and two half-full ones
    assert np.flatnonzero(sat[:, 1]).tolist() == list(range(26, 35))
    assert img[25, 1] == pytest.approx(0.5 * sky.FULL_WELL)
    assert img[35, 1] == pytest.approx(0.5 * sky.FULL_WELL)
    assert not sat[:, [0, 2]].any()


def test_detector_defects_are_flagged_and_hot_pixels_grow_with_time():
    early = sky.make_ccd((512, 512), "2010-09-01", np.random.default_rng(1))
    late = sky.make_ccd((512, 512), "2019-08-01", np.random.default_rng(1))
    assert late.hot_index.size > 2 * early.hot_index.size
    g = sim.simulate_group((128, 128), (500.0, 800.0), "2015-01-01", seed=2)
    a, b = g.exposures
    np.testing.assert_array_equal(a.dq & sky.DQ_HOT, b.dq & sky.DQ_HOT)
    assert ((a.dq & sky.DQ_BADCOL) > 0).sum() >= 128 // 4
    hot = (a.dq & sky.DQ_HOT) > 0
    assert hot.any()


# --- the default preset --------------------------------------------------------------------

def test_default_preset_spans_the_paper_density_range(default_dataset):
    ds = default_dataset
    spec = sim.PRESETS["sim"]
    assert len(ds.groups) == spec.n_groups == 6
    assert all(len(g.exposures) == 6 and g.exposures[0].shape == (512, 512) for g in ds.groups)
    fractions = np.array([e.meta["cr_fraction"] for _, e in ds.exposures()])
    assert fractions.min() <= 0.015 and fractions.max() >= 0.12
    assert fractions.min() >= 0.005 and fractions.max() <= 0.20
    dates = [g.date_obs for g in ds.groups]
    assert dates == sorted(dates) and dates[0].startswith("2010") and dates[-1].startswith("2019")
    for g in ds.groups:  # exposure times differ within a group
        assert len({e.exptime for e in g.exposures}) == len(g.exposures)
    rate = {g.date_obs[:4]: g.exposures[0].meta["cr_rate_per_1000s"] for g in ds.groups}
    assert rate["2019"] > rate["2014"] * 1.4          # solar minimum vs maximum
    hot = [np.count_nonzero(g.exposures[0].dq & sky.DQ_HOT) for g in ds.groups]
    assert hot == sorted(hot)


def test_default_preset_has_enough_measurable_stars(default_dataset):
    sep = pytest.importorskip("sep")
    for group in default_dataset.groups:
        e = min(group.exposures, key=lambda x: x.exptime)  # the hardest case
        clean = np.ascontiguousarray(e.sci - e.crtruth, dtype=np.float32)
        bkg = sep.Background(clean, mask=e.dq != 0)
        objs = sep.extract(clean - bkg.back(), 3.0, err=bkg.globalrms, mask=e.dq != 0,
                           minarea=16)
        ny, nx = e.shape
        ok = ((objs["x"] > 32) & (objs["x"] < nx - 32) & (objs["y"] > 32)
              & (objs["y"] < ny - 32) & (objs["b"] / objs["a"] > 0.8))
        assert ok.sum() >= 40, (group.name, int(ok.sum()))


# --- dithered groups -----------------------------------------------------------------------

def test_dithered_group_wcs_matches_the_true_shifts(tmp_path):
    from astropy.wcs import WCS

    shifts = [(0.0, 0.0), (3.4, -2.7), (-5.25, 6.5), (10.0, 0.125)]
    g = sim.simulate_dithered_group((128, 160), shifts, seed=4)
    assert g.kind == "dithered" and len(g.exposures) == len(shifts)
    w0 = WCS(g.exposures[0].wcs_header)
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, 159, 50), rng.uniform(0, 127, 50)
    ra, dec = w0.pixel_to_world_values(x0, y0)
    for exp, (dx, dy) in zip(g.exposures, shifts):
        assert exp.meta["shift_xy"] == (dx, dy)
        xk, yk = WCS(exp.wcs_header).world_to_pixel_values(ra, dec)
        assert np.max(np.abs(xk - (x0 + dx))) < 0.01
        assert np.max(np.abs(yk - (y0 + dy))) < 0.01
    # pixel scale 0.05"/px
    assert np.sqrt(abs(np.linalg.det(w0.pixel_scale_matrix))) * 3600 == pytest.approx(0.05)
    # the WCS survives a FITS round trip
    path = write_exposures(tmp_path / "d1_flc.fits", [g.exposures[1]])
    back = read_exposures(path)[0]
    assert back.wcs_header["CRPIX1"] == pytest.approx(g.exposures[1].wcs_header["CRPIX1"])


def test_dithered_images_show_the_sources_at_the_shifted_positions():
    shifts = [(0.0, 0.0), (3.4, -2.7), (-5.25, 6.5)]
    g = sim.simulate_dithered_group((200, 200), shifts, seed=9, exptimes=800.0)
    cat = g.exposures[0].meta["stars"]
    # a bright unsaturated star well inside every frame
    peak = cat["flux"] * 800 * 0.16
    ok = ((peak > 2000) & (peak < 50000) & (cat["x"] > 20) & (cat["x"] < 179)
          & (cat["y"] > 20) & (cat["y"] < 179))
    assert ok.any()
    k = np.flatnonzero(ok)[np.argmax(cat["flux"][ok])]
    centroids = []
    for exp, (dx, dy) in zip(g.exposures, shifts):
        x, y = cat["x"][k] + dx, cat["y"][k] + dy
        clean = exp.sci - exp.crtruth - exp.meta["sky_e"]
        iy, ix = int(round(y)), int(round(x))
        box = clean[iy - 3:iy + 4, ix - 3:ix + 4]
        yy, xx = np.mgrid[iy - 3:iy + 4, ix - 3:ix + 4]
        centroids.append(((box * xx).sum() / box.sum(), (box * yy).sum() / box.sum()))
    for (cx, cy), (dx, dy) in zip(centroids, shifts):
        assert cx - centroids[0][0] == pytest.approx(dx, abs=0.15)
        assert cy - centroids[0][1] == pytest.approx(dy, abs=0.15)


# --- the disk cache --------------------------------------------------------------------------

def _manifest(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text())


def _mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_ensure_simulated_writes_readable_files_once(tmp_path):
    folder = sim.ensure_simulated("sim-tiny", tmp_path)
    assert folder == tmp_path / "sim-tiny"
    m = _manifest(folder)
    spec = sim.PRESETS["sim-tiny"]
    assert m["simulator_version"] == sim.SIMULATOR_VERSION and m["seed"] == spec.seed
    assert [g["name"] for g in m["groups"]] == [f"sim-tiny_g{i:02d}" for i in range(2)]
    files = [e["file"] for g in m["groups"] for e in g["exposures"]]
    assert len(files) == spec.n_exposures
    memory = sim.simulate_dataset("sim-tiny")
    first = read_exposures(folder / files[0])[0]
    assert first.crtruth is not None
    np.testing.assert_array_equal(first.crtruth, memory.groups[0].exposures[0].crtruth)
    np.testing.assert_array_equal(first.sci, memory.groups[0].exposures[0].sci)
    np.testing.assert_array_equal(first.dq, memory.groups[0].exposures[0].dq)
    # idempotent: nothing rewritten
    before = _mtimes(folder)
    assert sim.ensure_simulated("sim-tiny", tmp_path) == folder
    assert _mtimes(folder) == before
    # only the dataset and its lock file are left in data_dir
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sim-tiny.lock", "sim-tiny"]


def test_load_simulated_round_trip_and_hash_check(tmp_path):
    ds = sim.load_simulated("sim-tiny", tmp_path)
    memory = sim.simulate_dataset("sim-tiny")
    assert [g.name for g in ds.groups] == [g.name for g in memory.groups]
    assert ds.provenance["seed"] == sim.PRESETS["sim-tiny"].seed
    assert ds.provenance["simulator_version"] == sim.SIMULATOR_VERSION
    assert len(ds.provenance["files"]) == sim.PRESETS["sim-tiny"].n_exposures
    for (_, a), (_, b) in zip(ds.exposures(), memory.exposures()):
        assert a.name == b.name and a.exptime == b.exptime and a.date_obs == b.date_obs
        np.testing.assert_array_equal(a.crtruth, b.crtruth)
        assert a.meta["cr_fraction"] == pytest.approx(b.meta["cr_fraction"])
    # a corrupted file is named
    victim = tmp_path / "sim-tiny" / "sim-tiny_g01_e2_flc.fits"
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(CRBenchDataError, match="sim-tiny_g01_e2_flc.fits"):
        sim.load_simulated("sim-tiny", tmp_path)


def test_rebuilds_when_version_or_seed_differ(tmp_path, monkeypatch):
    folder = sim.ensure_simulated("sim-tiny", tmp_path)
    first_mtimes = _mtimes(folder)
    monkeypatch.setattr(sim, "SIMULATOR_VERSION", "0.0.0-test")
    sim.ensure_simulated("sim-tiny", tmp_path)
    assert _manifest(folder)["simulator_version"] == "0.0.0-test"
    assert _mtimes(folder) != first_mtimes
    monkeypatch.undo()
    # a manifest with another seed is rebuilt too
    m = _manifest(folder)
    m["seed"] = 1
    (folder / "dataset.json").write_text(json.dumps(m))
    sim.ensure_simulated("sim-tiny", tmp_path)
    m = _manifest(folder)
    assert m["seed"] == sim.PRESETS["sim-tiny"].seed
    assert m["simulator_version"] == sim.SIMULATOR_VERSION
    assert not list(tmp_path.glob(".sim-tiny.tmp-*"))


def test_rebuilds_when_the_preset_groups_change(tmp_path, monkeypatch):
    """A cache built for other group sizes (e.g. 4 exposures before sim had 6) is stale."""
    folder = sim.ensure_simulated("sim-tiny", tmp_path)
    spec = sim.PRESETS["sim-tiny"]
    grown = sim.SimSpec(spec.name, spec.shape, tuple(
        sim.GroupSpec(g.date, g.exptimes + (4000.0,)) for g in spec.groups), seed=spec.seed)
    monkeypatch.setitem(sim.PRESETS, "sim-tiny", grown)
    sim.ensure_simulated("sim-tiny", tmp_path)
    assert [len(g["exposures"]) for g in _manifest(folder)["groups"]] == [4, 4]


def test_sim_has_the_papers_group_size():
    assert all(len(g.exptimes) == 6 for g in sim.PRESETS["sim"].groups)


def test_failed_build_leaves_nothing_half_written(tmp_path, monkeypatch):
    real = sim.write_exposures
    calls = []

    def flaky(path, exposures, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(path, exposures, **kw)

    monkeypatch.setattr(sim, "write_exposures", flaky)
    with pytest.raises(OSError, match="disk full"):
        sim.ensure_simulated("sim-tiny", tmp_path)
    assert len(calls) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sim-tiny.lock"]
    # an existing good dataset survives a failed rebuild untouched
    monkeypatch.setattr(sim, "write_exposures", real)
    folder = sim.ensure_simulated("sim-tiny", tmp_path)
    before = _mtimes(folder)
    calls.clear()
    monkeypatch.setattr(sim, "write_exposures", flaky)
    monkeypatch.setattr(sim, "SIMULATOR_VERSION", "0.0.0-test")
    with pytest.raises(OSError):
        sim.ensure_simulated("sim-tiny", tmp_path)
    assert _mtimes(folder) == before
    assert _manifest(folder)["simulator_version"] != "0.0.0-test"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sim-tiny.lock", "sim-tiny"]


def _worker(data_dir, log, barrier, out):
    """Child process: count calls of the builder, then race the other child."""
    real = sim._build

    def counting_build(spec, dest):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        real(spec, dest)

    sim._build = counting_build
    barrier.wait()
    out.put(str(sim.ensure_simulated("sim-tiny", Path(data_dir))))


def test_concurrent_callers_build_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # no fork-with-threads hazards
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    log = tmp_path / "builds.log"
    data_dir = tmp_path / "data"
    procs = [ctx.Process(target=_worker, args=(data_dir, log, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    results = {out.get(timeout=5) for _ in procs}
    assert results == {str(data_dir / "sim-tiny")}
    assert len(log.read_text().split()) == 1
    ds = sim.load_simulated("sim-tiny", data_dir)
    assert len(ds.groups) == 2
