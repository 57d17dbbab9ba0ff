"""Real-product loaders on the real HST frames in ../shared/data/hst, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pytest_crbench.errors import CRBenchDataError, CRBenchMissingDataError
from pytest_crbench.datasets.hst import (
    DQ_SATURATED, detect_loader, load_product, read_acs_raw, read_stis_raw, read_wfpc2_c0f)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hst"
pytestmark = [
    pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")
PAIRS = ["o56502020", "o56502030", "o56502040", "o56502050", "o56503010", "o56503020"]


def _cr_fraction(a, b, nsigma=5.0):
    """Fraction of pixels high in one imset only, the pair scaled by exposure time."""
    sb = b.sci * np.float32(a.exptime / b.exptime)
    sig = np.sqrt(np.abs(np.minimum(a.sci, sb)) + 2 * a.read_noise ** 2)
    return float(((a.sci - sb) > nsigma * sig).mean()), float(((sb - a.sci) > nsigma * sig).mean())


@needs_shared
@pytest.mark.parametrize("root", PAIRS)
def test_stis_crsplit_pairs(root):
    path = SHARED / f"{root}_raw.fits"
    assert detect_loader(path) == "stis_raw"
    a, b = read_stis_raw(path)
    for exp, ver in ((a, 1), (b, 2)):
        assert exp.sci.shape == (1024, 512)  # illuminated area, binned 2x1, overscan trimmed
        assert exp.instrument == "STIS" and exp.detector == "CCD" and exp.filter == "G430M"
        assert exp.gain == 1.0 and exp.meta["gain_from"] == "CCDGAIN"
        assert exp.meta["imset"] == ver and exp.meta["trim"] == (10, 1034, 10, 522)
        assert 1100 < exp.meta["bias_dn"] < 1150
        assert 2.5 < exp.read_noise < 6.0 and exp.meta["read_noise_from"] == "overscan"
        assert exp.saturation == 33000.0
        assert exp.err is None and set(np.unique(exp.dq)) <= {0, DQ_SATURATED}
        assert exp.exptime == fits.getheader(path, ("SCI", ver))["EXPTIME"]
        # bias removed: the median level is tens of e- (dark + faint spectrum), not ~1100
        assert 0 < np.median(exp.sci) < 60
    # a pair: same scene; 2-10 % of pixels hit by cosmic rays in each imset
    fa, fb = _cr_fraction(a, b)
    assert 0.02 < fa < 0.10 and 0.02 < fb < 0.10
    from scipy.ndimage import median_filter

    ma, mb = median_filter(a.sci, 5), median_filter(b.sci, 5)
    bright = ma > 200
    rate = (mb[bright].sum() / b.exptime) / (ma[bright].sum() / a.exptime)
    assert 0.9 < rate < 1.1


@needs_shared
def test_stis_o56502010_imsets_differ():
    a, b = read_stis_raw(SHARED / "o56502010_raw.fits")
    assert np.median(b.sci) / np.median(a.sci) > 3  # ~4x: why it is not in the gate dataset


@needs_shared
def test_wfpc2_c0f():
    path = SHARED / "u5780205r_c0f_trimmed.fits"
    assert detect_loader(path) == "wfpc2_c0f"
    exps = read_wfpc2_c0f(path)
    assert [e.chip for e in exps] == [1, 2, 3, 4]
    assert [e.detector for e in exps] == ["PC1", "WF2", "WF3", "WF4"]
    raw = fits.getdata(path)
    for e, cube in zip(exps, raw):
        assert e.sci.shape == (200, 200) and e.gain == 7.0 and e.exptime == 300.0
        assert e.date_obs == "1999-02-20" and e.filter == "FR533P15"
        np.testing.assert_allclose(e.sci, cube.astype(np.float32) * 7, rtol=1e-6)
        assert e.wcs_header is None and e.meta["trimmed"] and e.meta["wcs_untrimmed"]
    assert (exps[1].dq == DQ_SATURATED).sum() > 0  # the saturated core on WF2


@needs_shared
@pytest.mark.parametrize("name, filt", [("j6gp01lzq_raw.fits", "F550M"),
                                        ("j6gp01mkq_raw.fits", "F435W")])
def test_acs_hrc_raw(name, filt):
    path = SHARED / name
    assert detect_loader(path) == "acs_raw"
    (e,) = read_acs_raw(path)
    assert e.sci.shape == (1024, 1024) and e.meta["trim"] == (0, 1024, 19, 1043)
    assert e.gain == 4.0 and e.exptime == 5.0 and e.filter == filt and e.detector == "HRC"
    assert 1150 < e.meta["bias_dn"] < 1250 and abs(np.median(e.sci)) < 8
    assert 3 < e.read_noise < 8
    assert e.wcs_header["CRPIX1"] == 531.0 - 19 and e.wcs_header["CTYPE1"].startswith("RA")


@needs_shared
def test_load_product_auto_matches_explicit():
    a = load_product(SHARED / "o56503010_raw.fits")
    b = load_product(SHARED / "o56503010_raw.fits", loader="stis_raw")
    assert [e.name for e in a] == [e.name for e in b] == ["o56503010_raw[1]", "o56503010_raw[2]"]


@needs_shared
def test_real_datasets_load(tmp_path):
    from pytest_crbench.datasets.cache import seed
    from pytest_crbench.datasets.real import REAL_DATASETS, load_real_dataset

    with pytest.raises(CRBenchMissingDataError, match="crbench data fetch stis-crsplit"):
        load_real_dataset("stis-crsplit", data_dir=tmp_path, offline=True)
    seed(SHARED, data_dir=tmp_path)
    assert set(REAL_DATASETS) >= {"stis-crsplit", "wfpc2-smoke", "hrc-smoke"}
    ds = load_real_dataset("stis-crsplit", data_dir=tmp_path, offline=True)
    assert [g.kind for g in ds.groups] == ["crsplit"] * 6
    assert all(len(g.exposures) == 2 for g in ds.groups)
    assert ds.provenance["scored"] is True and "o56502010" in ds.provenance["excluded"]
    assert len(ds.provenance["files"]) == 12 and ds.version == "1"
    smoke = load_real_dataset("wfpc2-smoke", data_dir=tmp_path, offline=True)
    assert smoke.provenance["scored"] is False and len(smoke.groups) == 4
    hrc = load_real_dataset("hrc-smoke", data_dir=tmp_path, offline=True)
    assert hrc.provenance["smoke_only"] and len(hrc.groups) == 2


# ------------------------------------------------------------------ bad input


def _write(path, hdus):
    fits.HDUList(hdus).writeto(path)
    return path


def test_fits_without_sci(tmp_path):
    p = _write(tmp_path / "nosci_flt.fits", [fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4)), name="DQ")])
    with pytest.raises(CRBenchDataError, match=r"nosci_flt.fits: no SCI extension.*'DQ'"):
        load_product(p)
    prim = fits.PrimaryHDU()
    prim.header["INSTRUME"] = "STIS"
    prim.header["DETECTOR"] = "CCD"
    p = _write(tmp_path / "nosci_raw.fits", [prim])
    with pytest.raises(CRBenchDataError, match="no SCI extension"):
        load_product(p)


def test_wrong_bunit(tmp_path):
    prim = fits.PrimaryHDU()
    prim.header["EXPTIME"] = 100.0
    sci = fits.ImageHDU(np.ones((8, 8), np.float32), name="SCI", ver=1)
    sci.header["BUNIT"] = "JY/PIXEL"
    p = _write(tmp_path / "jy_flt.fits", [prim, sci])
    with pytest.raises(CRBenchDataError, match=r"jy_flt.fits\[SCI,1\]: BUNIT='JY/PIXEL'"):
        load_product(p, loader="flt")


def _stis(tmp_path, *, drop=None, bunit="COUNTS"):
    prim = fits.PrimaryHDU()
    for k, v in dict(INSTRUME="STIS", DETECTOR="CCD", CCDGAIN=1, OPT_ELEM="G430M",
                     BINAXIS1=1, BINAXIS2=1).items():
        prim.header[k] = v
    data = np.full((1044, 1062), 1000, np.uint16)
    sci = fits.ImageHDU(data, name="SCI", ver=1)
    for k, v in dict(EXPTIME=10.0, LTV1=19.0, LTV2=0.0, BUNIT=bunit,
                     **{"DATE-OBS": "2000-01-01"}).items():
        sci.header[k] = v
    for hdr in (prim.header, sci.header):
        if drop and drop in hdr:
            del hdr[drop]
    return _write(tmp_path / "fake_raw.fits", [prim, sci])


@pytest.mark.parametrize("key", ["EXPTIME", "CCDGAIN", "LTV1", "DATE-OBS"])
def test_stis_missing_keyword_names_file_and_keyword(tmp_path, key):
    p = _stis(tmp_path, drop=key)
    with pytest.raises(CRBenchDataError, match=rf"fake_raw.fits.*the {key} keyword is missing"):
        read_stis_raw(p)


def test_stis_synthetic_bias_and_units(tmp_path):
    (e,) = read_stis_raw(_stis(tmp_path))
    assert e.sci.shape == (1024, 1024) and np.all(e.sci == 0) and e.meta["bias_dn"] == 1000
    with pytest.raises(CRBenchDataError, match="BUNIT='ELECTRONS'"):
        read_stis_raw(_stis_e(tmp_path))


def _stis_e(tmp_path):
    sub = tmp_path / "e"
    sub.mkdir()
    return _stis(sub, bunit="ELECTRONS")


def test_wrong_instrument_and_loader(tmp_path):
    p = _stis(tmp_path)
    with pytest.raises(CRBenchDataError, match="expected WFPC2"):
        read_wfpc2_c0f(p)
    with pytest.raises(CRBenchDataError, match="unknown loader 'magic'"):
        load_product(p, loader="magic")
    with pytest.raises(CRBenchDataError, match="no such file"):
        load_product(tmp_path / "absent.fits")
    (tmp_path / "junk.fits").write_bytes(b"not fits at all" * 100)
    with pytest.raises(CRBenchDataError, match="not a readable FITS file"):
        load_product(tmp_path / "junk.fits", loader="stis_raw")
