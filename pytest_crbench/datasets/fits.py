"""Read and write HST-style multi-extension FITS files (PRIMARY + SCI/ERR/DQ per chip).

Layout (the one of ACS/WFC and WFC3/UVIS ``_flc``/``_flt`` products):

* PRIMARY: no data; header facts ``INSTRUME``, ``DETECTOR``, ``FILTER`` (or
  ``FILTER1``/``FILTER2``), ``EXPTIME`` (s), ``DATE-OBS``, ``CCDGAIN`` (e-/DN),
  ``READNSE`` (e-, else the mean of ``READNSEA..D``), ``SATURATE`` (e-, optional).
* per chip ``EXTVER`` = 1, 2, …: ``SCI`` (``BUNIT`` electrons, electrons/s, counts or
  counts/s), ``ERR`` (same unit, optional), ``DQ`` (integer, optional, 0 = good), and for
  simulated data ``CRTRUTH`` (injected cosmic-ray charge in e-).

Units other than electrons are converted from the header facts (``EXPTIME``, ``CCDGAIN``)
or refused with an error that names the file, the extension and the unit.  The writer
:func:`write_exposures` produces the same layout (always in electrons) and writes
atomically: a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from pytest_crbench._util import atomic_write, native, row_strips
from pytest_crbench.errors import CRBenchDataError, CRBenchError
from pytest_crbench.science.exposures import DEFAULT_SATURATION, Exposure

__all__ = ["to_electrons", "filter_name", "header_facts", "read_exposures", "write_exposures"]

#: Units accepted in ``BUNIT`` (case-insensitive, spaces removed) and how to get e-.
_UNITS = {
    "ELECTRONS": ("e", False),
    "ELECTRON": ("e", False),
    "E-": ("e", False),
    "ELECTRONS/S": ("e", True),
    "ELECTRONS/SEC": ("e", True),
    "E-/S": ("e", True),
    "COUNTS": ("dn", False),
    "DN": ("dn", False),
    "COUNTS/S": ("dn", True),
    "DN/S": ("dn", True),
}

#: WCS keywords copied from a SCI header into ``Exposure.wcs_header``.
_WCS_KEYS = (
    "WCSAXES", "CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
    "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CDELT1", "CDELT2", "PC1_1", "PC1_2",
    "PC2_1", "PC2_2", "CUNIT1", "CUNIT2", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE",
)


def to_electrons(data: np.ndarray, bunit: str, *, exptime: float, gain: float | None,
                 where: str) -> np.ndarray:
    """Convert ``data`` given in ``bunit`` to electrons, or raise naming ``where``."""
    key = (bunit or "").strip().upper().replace(" ", "")
    if key not in _UNITS:
        raise CRBenchDataError(
            f"{where}: BUNIT={bunit!r} is not supported; expected one of electrons, "
            "electrons/s, counts or counts/s"
        )
    kind, per_second = _UNITS[key]
    out = native(data, np.float32)
    if kind == "dn":
        if gain is None or not np.isfinite(gain) or gain <= 0:
            raise CRBenchDataError(
                f"{where}: BUNIT={bunit!r} needs the gain (CCDGAIN or ATODGAIN keyword) "
                "to convert to electrons, and none was found"
            )
        out = out * np.float32(gain)
    if per_second:
        out = out * np.float32(exptime)
    return out


def _first(header, keys, default=None):
    for key in keys:
        if key in header and header[key] not in (None, ""):
            return header[key]
    return default


def filter_name(header) -> str:
    if "FILTER" in header:
        return str(header["FILTER"]).strip()
    names = [str(header.get(k, "")).strip() for k in ("FILTER1", "FILTER2")]
    names = [n for n in names if n and not n.upper().startswith("CLEAR")]
    return "+".join(names) if names else "UNKNOWN"


def _read_noise(header) -> float | None:
    value = _first(header, ("READNSE", "RDNOISE", "READNOIS"))
    if value is not None:
        return float(value)
    amps = [float(header[k]) for k in ("READNSEA", "READNSEB", "READNSEC", "READNSED")
            if k in header and float(header[k]) > 0]
    return float(np.mean(amps)) if amps else None


def header_facts(primary, sci, *, where: str) -> dict:
    """Header facts of one chip, from the SCI header falling back on the primary one."""

    def get(keys, default=None):
        value = _first(sci, keys)
        return _first(primary, keys, default) if value is None else value

    exptime = get(("EXPTIME",))
    if exptime is None:
        raise CRBenchDataError(f"{where}: the EXPTIME keyword is missing")
    gain = get(("CCDGAIN", "ATODGAIN", "GAIN"))
    saturation = get(("SATURATE",), DEFAULT_SATURATION)
    try:
        read_noise = _read_noise(sci) or _read_noise(primary)
    except (TypeError, ValueError):
        raise CRBenchDataError(f"{where}: a read-noise keyword (READNSE*) is not a number") \
            from None
    return {
        "instrument": str(get(("INSTRUME",), "UNKNOWN")).strip(),
        "detector": str(get(("DETECTOR",), "UNKNOWN")).strip(),
        "filter": filter_name(primary) if "FILTER" not in sci else str(sci["FILTER"]).strip(),
        "exptime": header_number(exptime, "EXPTIME", where=where),
        "date_obs": str(get(("DATE-OBS",), "")).strip(),
        "gain": None if gain is None else header_number(gain, "CCDGAIN", where=where),
        "read_noise": read_noise,
        "saturation": header_number(saturation, "SATURATE", where=where),
    }


def header_number(value, key: str, *, where: str) -> float:
    """``float(value)`` of header keyword ``key``, or an error naming the file and key."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise CRBenchDataError(f"{where}: {key} = {value!r} is not a number") from None


@contextlib.contextmanager
def reading(path: str | os.PathLike):
    """The boundary around reading one FITS file: any error that is not ours (numpy's
    ``cannot reshape`` on a truncated file, astropy's header errors, …) becomes one
    :class:`CRBenchDataError` naming the file and, where astropy warned of it, the
    truncation.  Warnings raised meanwhile are passed on unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except CRBenchError:
            raise
        except Exception as exc:
            trunc = [str(w.message) for w in caught if "truncated" in str(w.message)]
            why = (f"the file is truncated ({trunc[0]})" if trunc
                   else f"{type(exc).__name__}: {exc}")
            raise CRBenchDataError(
                f"{path}: cannot be read: {why}; fetch it again or check it with "
                "`crbench data verify`") from exc
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def read_exposures(path: str | os.PathLike, *, name: str | None = None) -> list[Exposure]:
    """Read every chip of an HST-style ``_flc``/``_flt`` (or simulated) FITS file.

    Returns one :class:`Exposure` per ``SCI`` extension, in electrons.  Raises
    :class:`CRBenchDataError` naming the file and extension for anything unexpected.
    """
    from astropy.io import fits

    path = Path(path)
    with reading(path):
        return _read_exposures(fits, path, name or path.name.split(".fits")[0])


def _pixels(hdu) -> np.ndarray | None:
    """The image of ``hdu`` in native byte order (None when it holds none).  A 2-D image
    is read strip by strip through ``hdu.section`` into one array, so the file-order
    copy of a whole image is never held beside the native one (an 85-Mpix chip of
    SCI, ERR, DQ and CRTRUTH: 1.4 GB less at its peak)."""
    if int(hdu.header.get("NAXIS", 0)) != 2 or not hasattr(hdu, "section"):
        data = hdu.data
        return None if data is None else native(data)
    shape = (int(hdu.header["NAXIS2"]), int(hdu.header["NAXIS1"]))
    if 0 in shape:
        return None
    first = np.asarray(hdu.section[0:1])
    out = np.empty(shape, first.dtype.newbyteorder("="))
    for rows in row_strips(shape[0]):
        out[rows] = hdu.section[rows]
    return out


def _read_exposures(fits, path: Path, stem: str) -> list[Exposure]:
    try:
        hdul = fits.open(path, memmap=False)
    except FileNotFoundError:
        raise CRBenchDataError(f"{path}: no such file") from None
    except OSError as exc:
        raise CRBenchDataError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        primary = hdul[0].header
        sci_hdus = [h for h in hdul[1:] if h.name == "SCI"]
        if not sci_hdus:
            names = [h.name for h in hdul]
            raise CRBenchDataError(f"{path}: no SCI extension (extensions present: {names})")
        exposures = []
        for sci in sci_hdus:
            ver = sci.ver
            where = f"{path}[SCI,{ver}]"
            sci_pixels = _pixels(sci)
            if sci_pixels is None:
                raise CRBenchDataError(f"{where}: SCI extension holds no image")
            facts = header_facts(primary, sci.header, where=where)
            bunit = sci.header.get("BUNIT", primary.get("BUNIT"))
            if bunit is None:
                raise CRBenchDataError(f"{where}: the BUNIT keyword is missing")
            conv = dict(exptime=facts["exptime"], gain=facts["gain"])
            data = to_electrons(sci_pixels, bunit, where=where, **conv)
            del sci_pixels

            def ext(extname, _ver=ver):
                try:
                    return hdul[extname, _ver]
                except KeyError:
                    return None

            err_hdu, dq_hdu, truth_hdu = ext("ERR"), ext("DQ"), ext("CRTRUTH")
            err = err_pixels = None if err_hdu is None else _pixels(err_hdu)
            if err_pixels is not None:
                err_unit = err_hdu.header.get("BUNIT", bunit)
                err = to_electrons(err_pixels, err_unit, where=f"{path}[ERR,{ver}]", **conv)
                del err_pixels
            dq = None if dq_hdu is None else _pixels(dq_hdu)
            dq = np.zeros(data.shape, np.int32) if dq is None else native(dq, np.int32)
            truth = None if truth_hdu is None else _pixels(truth_hdu)
            if truth is not None:
                truth = native(truth, np.float32)
            wcs = {k: sci.header[k] for k in _WCS_KEYS if k in sci.header}
            chip = int(sci.header.get("CCDCHIP", ver))
            exposures.append(Exposure(
                name=stem if len(sci_hdus) == 1 else f"{stem}[{ver}]",
                sci=data, err=err, dq=dq, crtruth=truth,
                instrument=facts["instrument"], detector=facts["detector"],
                filter=facts["filter"], exptime=facts["exptime"], date_obs=facts["date_obs"],
                gain=facts["gain"] or 1.0,
                read_noise=facts["read_noise"] if facts["read_noise"] is not None else 5.0,
                saturation=facts["saturation"], chip=chip,
                wcs_header=wcs if "CRVAL1" in wcs else None, source=where,
            ))
    return exposures


class RowReader:
    """Rows of one image extension of a FITS file, read when sliced (``reader[a:b]``,
    native byte order, ``dtype``): nothing of the image is kept in memory."""

    def __init__(self, path: str | os.PathLike, extname: str, ver: int = 1, *,
                 dtype=np.float32) -> None:
        from astropy.io import fits

        self.path, self.ext, self.dtype = Path(path), (extname, ver), np.dtype(dtype)
        with fits.open(self.path, memmap=False) as hdul:
            header = hdul[self.ext].header
            self.shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))

    def __getitem__(self, rows) -> np.ndarray:
        from astropy.io import fits

        with fits.open(self.path, memmap=False) as hdul:
            return native(hdul[self.ext].section[rows], self.dtype)


@dataclass
class LazyExposure:
    """An exposure whose SCI and DQ stay in their (single-chip, electron) file: what the
    strip-wise reference of *another* exposure of the group reads (:class:`RowReader`)."""

    name: str
    sci: RowReader
    dq: RowReader
    exptime: float
    read_noise: float
    instrument: str = "UNKNOWN"
    detector: str = "UNKNOWN"
    date_obs: str = ""
    wcs_header: dict | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.sci.shape

    @property
    def source(self) -> str:
        """Where the pixels are: ``path[SCI,1]`` (as a read exposure's ``source``)."""
        return f"{self.sci.path}[SCI,1]"


def lazy_exposure(path: str | os.PathLike, *, name: str) -> LazyExposure:
    """The first chip of ``path`` (SCI in electrons, as the simulated presets write it)
    as a :class:`LazyExposure`: only the headers are read."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        sci = hdul["SCI", 1].header
        if str(sci.get("BUNIT", "")).upper() not in ("ELECTRONS", "ELECTRON", "E-"):
            raise CRBenchDataError(f"{path}[SCI,1]: a lazily read exposure must be in "
                                   f"electrons, BUNIT is {sci.get('BUNIT')!r}")
        facts = header_facts(hdul[0].header, sci, where=f"{path}[SCI,1]")
    return LazyExposure(
        name=name, sci=RowReader(path, "SCI"), dq=RowReader(path, "DQ", dtype=np.int32),
        exptime=facts["exptime"],
        read_noise=facts["read_noise"] if facts["read_noise"] is not None else 5.0,
        instrument=facts["instrument"], detector=facts["detector"],
        date_obs=facts["date_obs"])


def write_exposures(path: str | os.PathLike, exposures: Iterable[Exposure],
                    extra_primary: dict | None = None) -> Path:
    """Write exposures (the chips of one file) in the layout :func:`read_exposures` reads."""
    from astropy.io import fits

    exposures = list(exposures)
    if not exposures:
        raise CRBenchDataError(f"{path}: nothing to write")
    first = exposures[0]
    primary = fits.PrimaryHDU()
    h = primary.header
    h["INSTRUME"] = first.instrument
    h["DETECTOR"] = first.detector
    h["FILTER"] = first.filter
    h["EXPTIME"] = (float(first.exptime), "exposure time (s)")
    h["DATE-OBS"] = first.date_obs
    h["CCDGAIN"] = (float(first.gain), "gain (e-/DN)")
    h["READNSE"] = (float(first.read_noise), "read noise (e-)")
    h["SATURATE"] = (float(first.saturation), "saturation level (e-)")
    h["NEXTEND"] = 0
    for key, value in (extra_primary or {}).items():
        h[key] = value
    hdus = [primary]
    for ver, exp in enumerate(exposures, start=1):
        sci = fits.ImageHDU(exp.sci.astype(np.float32), name="SCI", ver=ver)
        sci.header["BUNIT"] = "ELECTRONS"
        sci.header["CCDCHIP"] = exp.chip
        for key, value in (exp.wcs_header or {}).items():
            sci.header[key] = value
        hdus.append(sci)
        if exp.err is not None:
            err = fits.ImageHDU(exp.err.astype(np.float32), name="ERR", ver=ver)
            err.header["BUNIT"] = "ELECTRONS"
            hdus.append(err)
        hdus.append(fits.ImageHDU(exp.dq.astype(np.int16), name="DQ", ver=ver))
        if exp.crtruth is not None:
            truth = fits.ImageHDU(exp.crtruth.astype(np.float32), name="CRTRUTH", ver=ver)
            truth.header["BUNIT"] = "ELECTRONS"
            truth.header["COMMENT"] = "exact injected cosmic-ray charge (simulation truth)"
            hdus.append(truth)
    h["NEXTEND"] = len(hdus) - 1
    return atomic_write(path, lambda tmp: fits.HDUList(hdus).writeto(tmp, overwrite=True))
