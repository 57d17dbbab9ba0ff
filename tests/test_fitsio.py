"""HST-style FITS round trip, unit conversion and bad-input errors."""

import numpy as np
import pytest
from astropy.io import fits

from conftest import make_group
from pytest_crbench.errors import CRBenchDataError
from pytest_crbench._util import atomic_write
from pytest_crbench.datasets.fits import read_exposures, write_exposures


def test_round_trip_keeps_every_extension_and_fact(tmp_path):
    group = make_group(2)
    a, b = group.exposures
    b.chip = 2
    a.err = np.sqrt(np.abs(a.sci) + 20)
    a.wcs_header = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.0, "CRVAL2": -5.0,
                    "CRPIX1": 48.0, "CRPIX2": 48.0, "CD1_1": -1.4e-5, "CD1_2": 0.0,
                    "CD2_1": 0.0, "CD2_2": 1.4e-5}
    path = write_exposures(tmp_path / "x_flc.fits", [a, b])
    with fits.open(path) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCI", "ERR", "DQ", "CRTRUTH", "SCI", "DQ", "CRTRUTH"]
        assert h["SCI", 1].header["BUNIT"] == "ELECTRONS"
    back = read_exposures(path)
    assert [e.name for e in back] == ["x_flc[1]", "x_flc[2]"]
    r = back[0]
    np.testing.assert_array_equal(r.sci, a.sci)
    np.testing.assert_allclose(r.err, a.err, rtol=1e-6)
    np.testing.assert_array_equal(r.crtruth, a.crtruth)
    assert (r.exptime, r.instrument, r.filter, r.date_obs) == (a.exptime, "ACS", "F606W", "2015-01-01")
    assert r.read_noise == pytest.approx(a.read_noise) and back[1].chip == 2
    assert r.wcs_header["CRVAL1"] == 10.0 and back[1].wcs_header is None
    assert r.source.endswith("x_flc.fits[SCI,1]")


def _write(path, data, bunit="COUNTS", **primary):
    hdr = fits.Header({"EXPTIME": 100.0, "CCDGAIN": 2.0, **primary})
    sci = fits.ImageHDU(data, name="SCI")
    if bunit is not None:
        sci.header["BUNIT"] = bunit
    fits.HDUList([fits.PrimaryHDU(header=hdr), sci]).writeto(path)
    return path


@pytest.mark.parametrize("bunit, factor", [("COUNTS", 2.0), ("COUNTS/S", 200.0),
                                            ("ELECTRONS/S", 100.0), ("electrons", 1.0)])
def test_units_are_converted_to_electrons(tmp_path, bunit, factor):
    data = np.arange(12, dtype=">f4").reshape(3, 4)  # big-endian, as FITS stores it
    (e,) = read_exposures(_write(tmp_path / "u.fits", data, bunit))
    np.testing.assert_allclose(e.sci, data * factor)
    assert e.sci.dtype == np.float32 and e.sci.dtype.byteorder in "=|<"


def test_bad_inputs_name_file_and_extension(tmp_path):
    data = np.ones((4, 4), np.float32)
    with pytest.raises(CRBenchDataError, match=r"u.fits\[SCI,1\]: BUNIT='JY' is not supported"):
        read_exposures(_write(tmp_path / "u.fits", data, "JY"))
    with pytest.raises(CRBenchDataError, match=r"m.fits\[SCI,1\]: the BUNIT keyword is missing"):
        read_exposures(_write(tmp_path / "m.fits", data, None))
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="ERR")]).writeto(tmp_path / "n.fits")
    with pytest.raises(CRBenchDataError, match=r"n.fits: no SCI extension \(extensions present: \['PRIMARY', 'ERR'\]\)"):
        read_exposures(tmp_path / "n.fits")
    hdr = fits.Header({"CCDGAIN": 1.0})
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(data, name="SCI")]).writeto(tmp_path / "t.fits")
    with pytest.raises(CRBenchDataError, match=r"t.fits\[SCI,1\]: the EXPTIME keyword is missing"):
        read_exposures(tmp_path / "t.fits")
    nan = data.copy()
    nan[1, 2] = np.inf
    with pytest.raises(CRBenchDataError, match=r"nan.fits\[SCI,1\]: SCI has 1 NaN/inf"):
        read_exposures(_write(tmp_path / "nan.fits", nan, "ELECTRONS"))
    (tmp_path / "junk.fits").write_text("not fits")
    with pytest.raises(CRBenchDataError, match="junk.fits"):
        read_exposures(tmp_path / "junk.fits")
    with pytest.raises(CRBenchDataError, match="no such file"):
        read_exposures(tmp_path / "absent.fits")


def test_counts_without_gain_are_refused(tmp_path):
    hdr = fits.Header({"EXPTIME": 1.0})
    fits.HDUList([fits.PrimaryHDU(header=hdr),
                  fits.ImageHDU(np.ones((2, 2)), name="SCI", header=fits.Header({"BUNIT": "COUNTS"}))]
                 ).writeto(tmp_path / "g.fits")
    with pytest.raises(CRBenchDataError, match="needs the gain"):
        read_exposures(tmp_path / "g.fits")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
