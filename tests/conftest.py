"""Shared test helpers: small synthetic scenes built here, independent of the simulator."""

from pathlib import Path

import numpy as np
import pytest

# pytester's in-process runs restore sys.modules afterwards; a compiled extension
# imported inside such a run could not be imported again ("cannot load module more than
# once per process").  Import the compiled modules the plugin uses here, once.
import astropy.io.fits  # noqa: E402,F401
import astropy.wcs  # noqa: E402,F401
import scipy.ndimage  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import sep  # noqa: E402,F401
from hypothesis import HealthCheck, settings

# Timing is never asserted in unit tests: a machine busy with other jobs must not fail a
# property test for being slow (deadline) or for generating its data slowly.
settings.register_profile("crbench", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("crbench")

from pytest_crbench.science.exposures import Exposure, Group

SHARED_HST = Path(__file__).resolve().parents[2] / "shared" / "data" / "hst"


def scene(shape=(96, 96), stars=((30.0, 40.0, 2e4), (60.3, 70.7, 8e4), (70.0, 20.0, 5e3)),
          sky=100.0, fwhm=2.0):
    """A noise-free image (e- per 1000 s) of Gaussian stars of known flux on a flat sky."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    s = fwhm / 2.3548
    img = np.full(shape, sky)
    for y, x, flux in stars:
        img += flux / (2 * np.pi * s * s) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    return img


def make_group(n=4, *, shape=(96, 96), seed=0, exptimes=None, n_cr=25, rn=4.5, **kw):
    """A same-pointing group with Poisson + read noise and injected CR hits (CRTRUTH)."""
    rng = np.random.default_rng(seed)
    base = scene(shape, **kw)
    exptimes = exptimes or [1000.0 + 200 * i for i in range(n)]
    exps = []
    for i, t in enumerate(exptimes):
        signal = base * t / 1000.0
        truth = np.zeros(shape, np.float32)
        for _ in range(n_cr):
            y, x = rng.integers(2, shape[0] - 2), rng.integers(2, shape[1] - 2)
            truth[y, x] += rng.uniform(800, 4000)
            truth[y, x + 1] += rng.uniform(100, 600)
        img = rng.poisson(signal).astype(np.float32) + truth + rng.normal(0, rn, shape)
        exps.append(Exposure(name=f"e{i}", sci=img, dq=np.zeros(shape, np.int32), exptime=t,
                             crtruth=truth, read_noise=rn, date_obs="2015-01-01",
                             instrument="ACS", detector="WFC", filter="F606W"))
    return Group(name="g", exposures=exps)


@pytest.fixture
def small_group():
    return make_group()


@pytest.fixture(scope="session")
def crbench_data_dir(tmp_path_factory):
    """One data cache for the plugin tests: the simulated presets are built once."""
    return tmp_path_factory.mktemp("crbench-data")


def make_project(pytester, monkeypatch, data_dir, detector_source: str):
    """A pytester project gating ``mydet:make`` (written from ``detector_source``) on
    ``sim-tiny`` with regions k3 and k20."""
    import textwrap

    monkeypatch.setenv("CRBENCH_DATA_DIR", str(data_dir))
    pytester.makepyfile(mydet=detector_source)
    pytester.syspathinsert()
    pytester.makepyprojecttoml(textwrap.dedent('''
        [tool.crbench]
        model = ["mydet:make"]
        dataset = ["sim-tiny"]
        k = [3, 20]
    '''))
    return pytester
