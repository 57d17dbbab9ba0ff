"""The numpy driz_cr rule against drizzlepac's own computation, on the same arrays.

drizzlepac's ``drizCR._driz_cr`` reads its inputs from an AstroDrizzle image object;
:class:`_DrizzlepacChip` hands it our arrays through the attributes that function reads
(in-memory mode, so it writes no file), and the mask it saves is compared pixel for
pixel with :func:`pytest_crbench.science.drizcr.driz_cr_mask`.  Install the extra
``pytest-crbench[drizzlepac]`` to run these tests; CI does.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_crbench.datasets.simulate import simulate_group
from pytest_crbench.science.drizcr import DrizCRParams, derivative, driz_cr_mask
from pytest_crbench.science.reference import ReferenceConfig, blotted_model, build_reference

drizCR = pytest.importorskip(
    "drizzlepac.drizCR", reason="drizzlepac is not installed (pip install 'pytest-crbench[drizzlepac]')")
quickDeriv = pytest.importorskip("drizzlepac.quickDeriv")


class _DrizzlepacChip:
    """The attributes of an AstroDrizzle science chip that ``_driz_cr`` reads."""

    def __init__(self, gain, read_noise, sky, cte_dir):
        self.group_member = True
        self.outputNames = {"blotImage": "blot", "crmaskImage": "crmask"}
        self._conversionFactor = 1.0
        self._effGain = gain
        self._rdnoise = read_noise
        self.subtractedSky = sky
        self.cte_dir = cte_dir
        self.dq_extn = "DQ"


class _DrizzlepacImage:
    """One single-chip exposure as ``_driz_cr`` sees an AstroDrizzle image object."""

    scienceExt = "SCI"
    _numchips = 1
    inmemory = True

    def __init__(self, data, blot, chip):
        from astropy.io import fits

        self._data = data
        self._chip = chip
        self.virtualOutputs = {"blot": [fits.PrimaryHDU(blot.copy())]}
        self.saved = {}

    def __getitem__(self, exten):
        assert exten == "SCI,1"
        return self._chip

    def getData(self, exten):
        return self._data.copy()

    def buildMask(self, chip, bits):
        return np.ones(self._data.shape, bool)

    def saveVirtualOutputs(self, outputs):
        self.saved.update(outputs)


def drizzlepac_mask(data, blot, *, gain=1.0, read_noise=5.0, sky=0.0, snr="5.0 1.5",
                    scale="1.2 0.7", grow=1, ctegrow=0, cte_dir=0):
    """Cosmic-ray mask (True = cosmic ray) computed by drizzlepac's ``_driz_cr``."""
    image = _DrizzlepacImage(data, blot, _DrizzlepacChip(gain, read_noise, sky, cte_dir))
    params = {"driz_cr_grow": grow, "driz_cr_ctegrow": ctegrow, "driz_cr_snr": snr,
              "driz_cr_scale": scale, "crbit": 4096, "inmemory": True, "driz_cr_corr": False}
    drizCR._driz_cr(image, image.virtualOutputs, params)
    good = image.saved["crmask"][0].data
    return good == 0


@pytest.fixture(scope="module")
def sim_group():
    return simulate_group((192, 224), (500.0, 1100.0, 1800.0, 2600.0, 3300.0, 4200.0),
                          "2019-08-11", seed=7, name="eq")


@pytest.fixture(scope="module")
def sim_pairs(sim_group):
    """(data, blot, read noise, cte_dir) of every exposure: the blot is our median model."""
    out = []
    for i, exp in enumerate(sim_group.exposures):
        model, _, _ = blotted_model(sim_group, i)
        out.append((exp.sci, model.astype(np.float32), exp.read_noise))
    return out


def test_derivative_equals_quickderiv(sim_pairs):
    rng = np.random.default_rng(3)
    for image in [p[1] for p in sim_pairs[:2]] + [rng.normal(0, 50, (7, 9)).astype(np.float32),
                                                  rng.normal(0, 5, (3, 3))]:
        np.testing.assert_array_equal(derivative(image), quickDeriv.qderiv(image))


PARAMETER_SETS = [
    dict(snr="5.0 1.5", scale="1.2 0.7"),  # the paper (AstroDrizzle's default scales)
    dict(snr="3.5 3.0", scale="1.2 0.7"),  # AstroDrizzle's default
    dict(snr="5.0 4.0", scale="0.0 0.0"),  # noise only
    dict(snr="4.0 2.5", scale="0.5 0.4", grow=3),
    dict(snr="5.0 1.5", scale="1.2 0.7", grow=2),
    dict(snr="5 1.5", scale="1.2 0.7", grow=1, ctegrow=3, cte_dir=1),
    dict(snr="5 1.5", scale="1.2 0.7", grow=3, ctegrow=2, cte_dir=-1),
    dict(snr="2.0 3.0", scale="2.0 0.1", gain=2.0, sky=40.0),  # snr2 > snr1, gain, sky
]


@pytest.mark.parametrize("p", PARAMETER_SETS, ids=lambda p: " ".join(f"{k}={v}" for k, v in p.items()))
def test_driz_cr_mask_equals_drizzlepac(sim_pairs, p):
    ours_params = DrizCRParams(snr=p["snr"], scale=p["scale"], grow=p.get("grow", 1),
                               ctegrow=p.get("ctegrow", 0))
    gain, sky = p.get("gain", 1.0), p.get("sky", 0.0)
    n_flagged = 0
    for data, blot, rn in sim_pairs:
        theirs = drizzlepac_mask(data, blot, gain=gain, read_noise=rn, sky=sky, snr=p["snr"],
                                 scale=p["scale"], grow=p.get("grow", 1),
                                 ctegrow=p.get("ctegrow", 0), cte_dir=p.get("cte_dir", 0))
        ours = driz_cr_mask(data, blot, gain=gain, read_noise=rn, background=sky,
                            params=ours_params, cte_dir=p.get("cte_dir", 0))
        np.testing.assert_array_equal(ours, theirs)
        n_flagged += int(ours.sum())
    assert n_flagged > 100  # the comparison covered real cosmic rays


def test_reference_mask_is_drizzlepacs(sim_group, sim_pairs):
    """build_reference's astrodrizzle mask = drizzlepac's mask outside the ignored pixels."""
    ref = build_reference(sim_group, ReferenceConfig(rule="astrodrizzle"))
    for (data, blot, rn), mask, ignore in zip(sim_pairs, ref.crmask, ref.ignore):
        theirs = drizzlepac_mask(data, blot, read_noise=rn) & ~ignore
        np.testing.assert_array_equal(mask, theirs)
