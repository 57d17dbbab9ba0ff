"""Loaders for real HST products, each returning :class:`~pytest_crbench.science.exposures.Exposure`
objects in electrons.

=============  ===========================================================================
loader         product
=============  ===========================================================================
``flt``        ACS/WFC, WFC3/UVIS ``_flc``/``_flt`` (SCI/ERR/DQ per chip):
               :func:`pytest_crbench.datasets.fits.read_exposures`.
``stis_raw``   STIS/CCD ``_raw`` with CR-SPLIT imsets: one Exposure per imset (SCI,1 …),
               overscan bias removed, trimmed to the illuminated area, DN × gain.
``wfpc2_c0f``  WFPC2 ``c0f`` (GEIS converted to FITS: the chips stacked in one cube in the
               primary HDU, per-chip keywords in a table extension), DN × ATODGAIN.
``acs_raw``    ACS/HRC ``_raw`` full frame: overscan bias removed, trimmed, DN × CCDGAIN.
=============  ===========================================================================

Raw frames carry no calibrated ERR/DQ: ``err`` is ``None`` and ``dq`` is 0 except the
saturated pixels, flagged :data:`DQ_SATURATED` (256, the HST "saturated" bit).  Header facts
come from the real keywords; a missing one raises :class:`CRBenchDataError` naming the file,
the extension and the keyword.  Where a raw file has no calibrated value (STIS ``READNSE =
0``), the read noise is *measured* in the overscan (clipped standard deviation) and the saturation level
is a documented instrument value (below).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench._util import native
from pytest_crbench.datasets.fits import read_exposures, reading, to_electrons
from pytest_crbench.science.exposures import DQ_SATURATED, Exposure

__all__ = ["STIS_SATURATION_E", "STIS_ILLUMINATED", "HRC_FULL_WELL_E", "HRC_ILLUMINATED",
           "WFPC2_READ_NOISE_E", "WFPC2_SATURATION_FRACTION", "ADC_MAX_16", "require",
           "robust_level", "read_stis_raw", "read_wfpc2_c0f", "read_acs_raw", "read_flt",
           "LOADERS", "LOADER_NAMES", "detect_loader", "load_product"]

#: STIS CCD saturation in electrons by commanded gain (STIS Instrument Handbook: at
#: CCDGAIN=1 the A/D converter saturates near 33,000 DN; at CCDGAIN=4 the full well,
#: ~144,000 e-, is reached first).  Used when the header has no ``SATURATE``.
STIS_SATURATION_E = {1: 33000.0, 2: 66000.0, 4: 144000.0, 8: 144000.0}
#: STIS/CCD illuminated area in unbinned pixels.
STIS_ILLUMINATED = (1024, 1024)
#: ACS/HRC full well (ACS Instrument Handbook), electrons.
HRC_FULL_WELL_E = 155000.0
#: ACS/HRC illuminated area (unbinned pixels).
HRC_ILLUMINATED = (1024, 1024)
#: WFPC2 read noise (e-) by ATODGAIN (WFPC2 Instrument Handbook: ~5.3 e- at gain 7,
#: ~7.5 e- at gain 15); the c0f header carries none.
WFPC2_READ_NOISE_E = {7: 5.3, 15: 7.5}
#: Fraction of the A/D ceiling above which a calibrated (flat-fielded) WFPC2 c0f pixel is
#: flagged saturated: ceiling = SATURATE (4095 DN) minus the chip's subtracted bias.
WFPC2_SATURATION_FRACTION = 0.97
#: Largest value of a 16-bit A/D converter.
ADC_MAX_16 = 65535


def _open(path):
    from astropy.io import fits

    path = Path(path)
    try:
        return path, fits.open(path, memmap=False)
    except FileNotFoundError:
        raise CRBenchDataError(f"{path}: no such file") from None
    except OSError as exc:
        raise CRBenchDataError(f"{path}: not a readable FITS file ({exc})") from None


def require(header, key: str, *, where: str, why: str = "", positive: bool = False):
    """``header[key]`` or a :class:`CRBenchDataError` naming the file and the keyword."""
    value = header.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        extra = f" (needed for {why})" if why else ""
        raise CRBenchDataError(f"{where}: the {key} keyword is missing{extra}")
    if positive:
        try:
            ok = float(value) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise CRBenchDataError(f"{where}: {key} = {value!r} must be a number > 0")
    return value


def _get(key, *headers, default=None):
    for h in headers:
        if h is not None and key in h and h[key] not in (None, ""):
            return h[key]
    return default


def _expect_instrument(primary, where: str, instrument: str, detector: str | None = None,
                       hint: str = "") -> None:
    """Refuse a file from another instrument (and detector) than the loader reads."""
    instr = str(_get("INSTRUME", primary, default="")).strip().upper()
    det = str(_get("DETECTOR", primary, default="")).strip().upper()
    if instr != instrument or (detector is not None and det != detector):
        want = instrument + (f"/{detector}" if detector else "")
        raise CRBenchDataError(f"{where}: INSTRUME/DETECTOR = {instr}/{det}, expected "
                               f"{want}{hint}")


def robust_level(values: np.ndarray, *, nsigma: float = 3.0, iters: int = 5
                 ) -> tuple[float, float]:
    """Median and sigma-clipped standard deviation of ``values`` (integer DN data make the
    MAD coarse, so the noise is the standard deviation after iterative 3σ clipping about
    the median, starting from 1.4826 × MAD)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    med = float(np.median(v))
    sigma = 1.4826 * float(np.median(np.abs(v - med))) or float(np.std(v))
    for _ in range(iters):
        keep = v[np.abs(v - med) <= nsigma * max(sigma, 0.5)]
        if keep.size < 10:
            break
        new = float(np.std(keep))
        if abs(new - sigma) < 1e-3:
            sigma = new
            break
        sigma = new
    return med, sigma


def _illuminated(shape, header, size, *, where, primary=None):
    """Slices of the illuminated area from LTV1/LTV2 and the binning."""
    h, w = shape
    ltv1 = float(require(header, "LTV1", where=where, why="locating the overscan"))
    ltv2 = float(require(header, "LTV2", where=where, why="locating the overscan"))
    bin1 = int(_get("BINAXIS1", header, primary, default=1) or 1)
    bin2 = int(_get("BINAXIS2", header, primary, default=1) or 1)
    x0, y0 = max(0, int(np.floor(ltv1))), max(0, int(np.floor(ltv2)))
    x1, y1 = min(w, x0 + size[0] // bin1), min(h, y0 + size[1] // bin2)
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise CRBenchDataError(
            f"{where}: LTV1={ltv1}, LTV2={ltv2} leave no illuminated area in a {w}x{h} image")
    return (slice(y0, y1), slice(x0, x1)), (bin1, bin2)


def _overscan_bias(raw: np.ndarray, ys: slice, xs: slice, *, where: str, skip: int = 2,
                   width: int = 10) -> tuple[float, float, str]:
    """Bias level and noise (DN) from the physical overscan columns beside the illuminated
    area (leading columns if there are enough, else trailing), rows of the illuminated area.
    ``skip`` columns next to the illuminated edge and the first column are left out."""
    h, w = raw.shape
    lead = (max(1, xs.start - skip - width), xs.start - skip)
    trail = (xs.stop + skip, min(w - 3, xs.stop + skip + width))
    for lo, hi, label in ((*lead, "leading"), (*trail, "trailing")):
        if hi - lo >= 3:
            level, noise = robust_level(raw[ys, lo:hi])
            return level, noise, f"{label} overscan columns {lo}:{hi}"
    raise CRBenchDataError(f"{where}: no overscan columns to measure the bias level")


def _sat_dq(electrons: np.ndarray, saturation: float, raw_dn: np.ndarray | None = None
            ) -> np.ndarray:
    dq = np.zeros(electrons.shape, np.int32)
    sat = electrons >= saturation
    if raw_dn is not None:
        sat |= raw_dn >= ADC_MAX_16
    dq[sat] = DQ_SATURATED
    return dq


# ------------------------------------------------------------------------------ STIS


def _raw_imsets(hdul, primary, path, where0: str, what: str):
    """Every raw SCI imset of an open file as ``(ver, where, header, data_DN, n)``.

    Errors name the file and extension: no SCI extension, an empty one, or a ``BUNIT``
    other than counts (DN).
    """
    sci_hdus = [h for h in hdul[1:] if h.name == "SCI"]
    if not sci_hdus:
        raise CRBenchDataError(
            f"{where0}: no SCI extension (extensions present: {[h.name for h in hdul]})")
    out = []
    for sci in sci_hdus:
        where = f"{path}[SCI,{sci.ver}]"
        if sci.data is None:
            raise CRBenchDataError(f"{where}: SCI extension holds no image")
        bunit = str(_get("BUNIT", sci.header, primary, default="COUNTS"))
        if bunit.strip().upper() not in ("COUNTS", "DN"):
            raise CRBenchDataError(f"{where}: BUNIT={bunit!r}; {what} must be in COUNTS (DN)")
        out.append((sci.ver, where, sci.header, native(sci.data, np.float32), len(sci_hdus)))
    return out


def read_stis_raw(path: str | os.PathLike, *, name: str | None = None) -> list[Exposure]:
    """Read a STIS/CCD ``_raw`` file: one Exposure per imset (CR-SPLIT member).

    Per imset: bias = median of the leading physical overscan columns (rows of the
    illuminated area); the image is trimmed to the illuminated 1024×1024 detector area
    (binned: 512 columns for BINAXIS1=2) located by LTV1/LTV2; electrons = (DN − bias) ×
    gain (ATODGAIN if calibrated, else the commanded CCDGAIN).  Dark current and hot pixels
    remain (they cancel in a CR-split pair).
    """
    path, hdul = _open(path)
    stem = name or path.name.split(".fits")[0]
    with hdul:
        primary = hdul[0].header
        where0 = str(path)
        _expect_instrument(primary, where0, "STIS", "CCD", " (only the STIS CCD is supported)")
        imsets = _raw_imsets(hdul, primary, path, where0, "a STIS _raw imset")
        ccdgain = float(require(primary, "CCDGAIN", where=where0, why="DN → electrons",
                                positive=True))
        atodgain = float(_get("ATODGAIN", primary, default=0.0) or 0.0)
        gain = atodgain if atodgain > 0 else ccdgain
        out = []
        for ver, where, hdr, raw, _ in imsets:
            exptime = float(require(hdr, "EXPTIME", where=where, why="the exposure time",
                                    positive=True))
            date_obs = str(_get("DATE-OBS", hdr, primary, default="")).strip()
            if not date_obs:
                raise CRBenchDataError(f"{where}: the DATE-OBS keyword is missing")
            (ys, xs), binning = _illuminated(raw.shape, hdr, STIS_ILLUMINATED, where=where,
                                              primary=primary)
            bias, noise_dn, region = _overscan_bias(raw, ys, xs, where=where)
            data_dn = raw[ys, xs] - np.float32(bias)
            electrons = to_electrons(data_dn, "COUNTS", exptime=exptime, gain=gain, where=where)
            rn_hdr = float(_get("READNSE", hdr, primary, default=0.0) or 0.0)
            read_noise = rn_hdr if rn_hdr > 0 else noise_dn * gain
            sat_hdr = _get("SATURATE", hdr, primary)
            if sat_hdr is not None and float(sat_hdr) > 0:
                saturation = float(sat_hdr)
            else:
                saturation = STIS_SATURATION_E.get(int(round(ccdgain)), 33000.0 * ccdgain)
            dq = _sat_dq(electrons, saturation, raw[ys, xs])
            out.append(Exposure(
                name=f"{stem}[{ver}]", sci=electrons, dq=dq, err=None, exptime=exptime,
                instrument="STIS", detector="CCD",
                filter=str(_get("OPT_ELEM", primary, default="UNKNOWN")).strip(),
                date_obs=date_obs, gain=gain, read_noise=float(read_noise),
                saturation=saturation, chip=1, wcs_header=None, source=where,
                meta={
                    "imset": ver, "bias_dn": bias, "bias_region": region,
                    "overscan_noise_dn": noise_dn, "read_noise_from": (
                        "READNSE" if rn_hdr > 0 else "overscan"),
                    "gain_from": "ATODGAIN" if atodgain > 0 else "CCDGAIN",
                    "saturation_from": "SATURATE" if sat_hdr else "STIS handbook",
                    "trim": (ys.start, ys.stop, xs.start, xs.stop), "binning": binning,
                    "expname": str(_get("EXPNAME", hdr, default="")).strip(),
                    "obstype": str(_get("OBSTYPE", primary, default="")).strip(),
                    "aperture": str(_get("APERTURE", primary, default="")).strip(),
                    "crsplit": int(_get("CRSPLIT", primary, default=1) or 1),
                    "units": "electrons (bias-subtracted raw; dark and hot pixels remain)",
                },
            ))
    return out


# ------------------------------------------------------------------------------ WFPC2


def read_wfpc2_c0f(path: str | os.PathLike, *, name: str | None = None) -> list[Exposure]:
    """Read a WFPC2 ``c0f`` file (4 chips in one cube, DN): one Exposure per chip.

    Gain from ``ATODGAIN``; the chip numbers (1 = PC1, 2–4 = WF2–4) and per-chip WCS from
    the table extension of per-chip keywords.  ``DQ`` marks pixels within
    :data:`WFPC2_SATURATION_FRACTION` of the A/D ceiling.  A trimmed cube (chips smaller
    than 800×800, e.g. the NASA FITS sample) keeps its WCS only in ``meta`` (``CRPIX``
    refers to the untrimmed chip and the trim offset is not recorded).
    """
    path, hdul = _open(path)
    stem = name or path.name.split(".fits")[0]
    with hdul:
        primary = hdul[0].header
        where = str(path)
        _expect_instrument(primary, where, "WFPC2")
        cube = hdul[0].data
        if cube is None or cube.ndim != 3:
            raise CRBenchDataError(
                f"{where}: expected the chips as a 3-D cube in the primary HDU, got "
                f"{None if cube is None else cube.shape}")
        exptime = float(require(primary, "EXPTIME", where=where, why="the exposure time",
                                positive=True))
        gain = float(require(primary, "ATODGAIN", where=where, why="DN → electrons",
                             positive=True))
        date_obs = str(require(primary, "DATE-OBS", where=where)).strip()
        bunit = _get("BUNIT", primary, default="COUNTS")
        ceiling = float(_get("SATURATE", primary, default=4095) or 4095)
        table = None
        for hdu in hdul[1:]:
            if hasattr(hdu, "columns"):
                table = hdu.data
                break
        nchip = cube.shape[0]
        if table is not None and len(table) != nchip:
            raise CRBenchDataError(
                f"{where}: the chip table has {len(table)} rows but the cube {nchip} chips")
        trimmed = cube.shape[1:] != (800, 800)
        filt = "+".join(str(_get(k, primary, default="")).strip() for k in ("FILTNAM1", "FILTNAM2")
                        if str(_get(k, primary, default="")).strip()) or "UNKNOWN"
        out = []
        for i in range(nchip):
            w = f"{path}[chip {i + 1}]"
            row = None if table is None else table[i]

            def col(key, default=None, _row=row):
                if _row is None or key not in _row.array.names:
                    return default
                return _row[key]

            chip = int(col("DETECTOR", i + 1))
            electrons = to_electrons(cube[i], bunit, exptime=exptime, gain=gain, where=w)
            bias = max(float(col("BIASEVEN", 0.0) or 0.0), float(col("BIASODD", 0.0) or 0.0))
            sat_dn = WFPC2_SATURATION_FRACTION * (ceiling - bias)
            dq = np.zeros(electrons.shape, np.int32)
            dq[native(cube[i], np.float32) >= sat_dn] = DQ_SATURATED
            wcs = None
            if row is not None and "CRVAL1" in row.array.names:
                wcs = {k: (str(col(k)).strip() if k.startswith("CTYPE") else float(col(k)))
                       for k in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
                                 "CD1_1", "CD1_2", "CD2_1", "CD2_2") if k in row.array.names}
            out.append(Exposure(
                name=f"{stem}[{chip}]", sci=electrons, dq=dq, err=None, exptime=exptime,
                instrument="WFPC2", detector="PC1" if chip == 1 else f"WF{chip}",
                filter=filt, date_obs=date_obs, gain=gain,
                read_noise=WFPC2_READ_NOISE_E.get(int(round(gain)), 5.3),
                saturation=sat_dn * gain, chip=chip,
                wcs_header=None if trimmed else wcs, source=w,
                meta={"wcs_untrimmed" if trimmed else "wcs": wcs, "trimmed": trimmed,
                      "bias_dn_subtracted": bias, "saturation_from": "SATURATE - bias",
                      "read_noise_from": "WFPC2 handbook",
                      "units": "electrons (calibrated c0f × ATODGAIN)"},
            ))
    return out


# ------------------------------------------------------------------------------ ACS raw


def read_acs_raw(path: str | os.PathLike, *, name: str | None = None) -> list[Exposure]:
    """Read an ACS/HRC ``_raw`` full frame (1062×1044 with overscan): bias from the leading
    physical overscan columns, trimmed to the illuminated 1024×1024, DN × CCDGAIN."""
    path, hdul = _open(path)
    stem = name or path.name.split(".fits")[0]
    with hdul:
        primary = hdul[0].header
        where0 = str(path)
        _expect_instrument(primary, where0, "ACS", "HRC",
                           " (for ACS/WFC use the calibrated _flc/_flt)")
        imsets = _raw_imsets(hdul, primary, path, where0, "a raw frame")
        exptime = float(require(primary, "EXPTIME", where=where0, why="the exposure time",
                                positive=True))
        gain = float(require(primary, "CCDGAIN", where=where0, why="DN → electrons",
                             positive=True))
        date_obs = str(require(primary, "DATE-OBS", where=where0)).strip()
        from pytest_crbench.datasets.fits import filter_name

        out = []
        for ver, where, hdr, raw, n_imsets in imsets:
            (ys, xs), _ = _illuminated(raw.shape, hdr, HRC_ILLUMINATED, where=where, primary=primary)
            bias, noise_dn, region = _overscan_bias(raw, ys, xs, where=where)
            electrons = to_electrons(raw[ys, xs] - np.float32(bias), "COUNTS", exptime=exptime,
                                     gain=gain, where=where)
            rn_hdr = float(_get("READNSE", primary, default=0.0) or 0.0)
            read_noise = rn_hdr if rn_hdr > 0 else noise_dn * gain
            sat_hdr = _get("SATURATE", hdr, primary)
            saturation = float(sat_hdr) if sat_hdr else HRC_FULL_WELL_E
            dq = _sat_dq(electrons, saturation, raw[ys, xs])
            wcs = None
            if str(hdr.get("CTYPE1", "")).startswith("RA"):
                from pytest_crbench.datasets.fits import _WCS_KEYS  # noqa: PLC0415

                wcs = {k: hdr[k] for k in _WCS_KEYS if k in hdr}
                wcs["CRPIX1"] = float(wcs.get("CRPIX1", 0.0)) - xs.start
                wcs["CRPIX2"] = float(wcs.get("CRPIX2", 0.0)) - ys.start
            out.append(Exposure(
                name=stem if n_imsets == 1 else f"{stem}[{ver}]", sci=electrons, dq=dq,
                err=None, exptime=exptime, instrument="ACS", detector="HRC",
                filter=filter_name(primary), date_obs=date_obs, gain=gain,
                read_noise=float(read_noise), saturation=saturation,
                chip=int(hdr.get("CCDCHIP", ver)), wcs_header=wcs, source=where,
                meta={"bias_dn": bias, "bias_region": region, "overscan_noise_dn": noise_dn,
                      "read_noise_from": "READNSE" if rn_hdr > 0 else "overscan",
                      "saturation_from": "SATURATE" if sat_hdr else "ACS handbook full well",
                      "trim": (ys.start, ys.stop, xs.start, xs.stop),
                      "units": "electrons (bias-subtracted raw; dark and hot pixels remain)"},
            ))
    return out


def read_flt(path: str | os.PathLike, *, name: str | None = None) -> list[Exposure]:
    """ACS/WFC or WFC3/UVIS ``_flc``/``_flt``: :func:`pytest_crbench.datasets.fits.read_exposures`."""
    return read_exposures(path, name=name)


LOADERS = {
    "flt": read_flt,
    "stis_raw": read_stis_raw,
    "wfpc2_c0f": read_wfpc2_c0f,
    "acs_raw": read_acs_raw,
}
#: loader names a groups file may give: the loaders, and "auto" (:func:`detect_loader`)
LOADER_NAMES = (*LOADERS, "auto")


def detect_loader(path: str | os.PathLike) -> str:
    """Choose the loader from the primary header (INSTRUME, cube shape, file name)."""
    from astropy.io import fits

    path = Path(path)
    try:
        primary = fits.getheader(path, 0)
    except FileNotFoundError:
        raise CRBenchDataError(f"{path}: no such file") from None
    except OSError as exc:
        raise CRBenchDataError(f"{path}: not a readable FITS file ({exc})") from None
    instr = str(primary.get("INSTRUME", "")).strip().upper()
    raw = "_raw" in path.name.lower() or str(primary.get("FILETYPE", "")).strip() == "SCI" and (
        str(primary.get("BLEVCORR", "")).strip().upper() == "PERFORM")
    if instr == "STIS":
        return "stis_raw"
    if instr == "WFPC2" and int(primary.get("NAXIS", 0)) == 3:
        return "wfpc2_c0f"
    if instr == "ACS" and raw and str(primary.get("DETECTOR", "")).strip().upper() == "HRC":
        return "acs_raw"
    return "flt"


def load_product(path: str | os.PathLike, *, loader: str = "auto", name: str | None = None
                 ) -> list[Exposure]:
    """Load any supported product with ``loader`` (``"auto"``: :func:`detect_loader`)."""
    if loader == "auto":
        loader = detect_loader(path)
    try:
        fn = LOADERS[loader]
    except KeyError:
        raise CRBenchDataError(
            f"{path}: unknown loader {loader!r}; expected one of {', '.join(LOADERS)}") from None
    with reading(path):
        return fn(path, name=name)
