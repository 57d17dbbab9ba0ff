"""Aperture photometry of stars in the original, clean-reference and detector-cleaned images.

This is section 4 of ``docs/method.md`` (the paper's photometric analysis):

1. **Finding stars** (:func:`find_stars`) on the *clean reference* (an image with cosmic
   rays finds thousands of CR "objects"), with sep: background and its RMS from
   ``sep.Background`` (ignored pixels masked); a star is a connected segment of pixels
   above ``thresh_sigma`` × the background RMS with **more than** ``min_area`` pixels
   (paper: > 16 px), an axis ratio a/b inside ``axis_ratio`` (0.8–1.2; sep gives a ≥ b so
   this means a/b ≤ 1.2 — the point-source criterion of the paper), farther than the
   edge margin from every CCD edge, and whose aperture holds no ignored pixel (DQ ≠ 0 or
   a saturation box: saturated stars cannot be measured).
2. **Edge margin**: ``edge_margin=None`` means automatic: ``min(128, shorter side // 8)``
   pixels — the paper's 128 px for full chips (≥ 1024 px a side), scaled down for small
   (simulated or cut-out) images so that the central ¾ of each axis stays usable
   (256 px → 32 px, 128 px → 16 px).
3. **Matching** (:func:`match_stars`) across the exposures of a group: separation below
   ``match_arcsec`` (0.1″) on the sky when every exposure has a celestial WCS (exact
   gnomonic projection, so no small-angle error), else below ``match_pixels`` (0.5 px) on
   the shared pixel grid of a pointing group.  One-to-one, closest pairs first.
4. **Aperture**: circular, radius from the segment area: ``r = aperture_scale ×
   sqrt(area / π)`` (the radius of a disc as large as the segment; ``aperture_scale``
   defaults to 1.0), clipped to [``aperture_min``, ``aperture_max``] = [2, 25] px.
   ``aperture_rule="a"`` uses ``r = aperture_scale × a`` instead (default scale 2.5).
   One star has **one centre and one radius** in all its images (original, clean,
   cleaned); within a pointing group (pixel matching) also the same centre (mean of the
   exposures) and radius (from the median area) in every exposure, as in the paper.
5. **Measuring** (:func:`measure_stars`): ``sep.sum_circle`` (subpix 5) on each image
   minus the *same* background map (the clean reference's), so differences between the
   three fluxes come only from the pixels inside the aperture.  ``σ_F`` = sqrt(Σ err²)
   over the aperture from the exposure's ERR image (when there is none: background
   variance + Poisson variance of the clean image, in electrons).
6. **Flags**: contaminated = |F_original − F_clean| > 3 σ_F; anomalous = |F_cleaned −
   F_clean| > 3 σ_F; ratios F_cleaned/F_clean and F_original/F_clean.  Size bins on the
   segment area: 16 < area ≤ 50, 50 < area ≤ 200, 200 < area ≤ 400 (labels ``"16-50"``,
   ``"50-200"``, ``"200-400"``; larger stars get ``">400"``).
7. **Summary** (:func:`pytest_crbench.science.photometry_summary.photometry_summary`,
   in its own module): the paper's fractions are over
   *contaminated* stars (“among stars affected by cosmic rays, 10 % outside [0.9, 1.1],
   55 % inside [0.97, 1.03]”); the same fractions over *all* stars carry ``_of_all``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench._util import native
from pytest_crbench.science.apertures import sum_circles, touches_ignored
from pytest_crbench.science.background import Background, background

__all__ = ["STAR_DTYPE", "PHOT_DTYPE", "PhotometryConfig", "find_stars", "match_stars",
           "find_group_stars", "measure_stars"]

#: Fields of a star list (output of :func:`find_stars`).
STAR_DTYPE = np.dtype([
    ("star_id", "i8"), ("x", "f8"), ("y", "f8"), ("area", "i8"), ("a", "f8"), ("b", "f8"),
    ("theta", "f8"), ("peak", "f8"), ("flux_iso", "f8"), ("radius", "f8"),
    ("size_bin", "U12"),
])

#: Fields of a photometry table (output of :func:`measure_stars`).
PHOT_DTYPE = np.dtype([
    ("star_id", "i8"), ("exposure", "U128"), ("x", "f8"), ("y", "f8"), ("area", "i8"),
    ("size_bin", "U12"), ("radius", "f8"), ("flux_original", "f8"), ("flux_clean", "f8"),
    ("flux_cleaned", "f8"), ("flux_err", "f8"), ("ratio_cleaned", "f8"),
    ("ratio_original", "f8"), ("contaminated", "?"), ("anomalous", "?"),
])


@dataclass(frozen=True)
class PhotometryConfig:
    """Settings of the photometric analysis; the defaults are the paper's (method.md §4)."""

    thresh_sigma: float = 3.0
    #: a star's segment must have MORE than this many pixels (paper: > 16)
    min_area: int = 16
    #: accepted range of the axis ratio a/b (paper: 0.8–1.2)
    axis_ratio: tuple[float, float] = (0.8, 1.2)
    #: pixels kept clear of every edge; None = min(128, shorter side // 8)
    edge_margin: int | None = None
    match_arcsec: float = 0.1
    match_pixels: float = 0.5
    #: "area": r = scale·sqrt(area/π) (scale 1.0); "a": r = scale·a (scale 2.5)
    aperture_rule: str = "area"
    aperture_scale: float | None = None
    aperture_min: float = 2.0
    aperture_max: float = 25.0
    contaminated_sigma: float = 3.0
    anomalous_sigma: float = 3.0
    size_bins: tuple[tuple[int, int], ...] = ((16, 50), (50, 200), (200, 400))
    #: background mesh (px); None = the shared rule of science.background.background_box
    background_box: int | None = None

    def __post_init__(self) -> None:
        def bad(msg):
            raise CRBenchConfigError(f"PhotometryConfig: {msg}")

        if not self.thresh_sigma > 0:
            bad(f"thresh_sigma must be > 0, got {self.thresh_sigma!r}")
        if int(self.min_area) < 0:
            bad(f"min_area must be >= 0, got {self.min_area!r}")
        lo, hi = self.axis_ratio
        if not 0 < lo <= 1 <= hi:
            bad(f"axis_ratio must satisfy 0 < low <= 1 <= high, got {self.axis_ratio!r}")
        if self.edge_margin is not None and int(self.edge_margin) < 0:
            bad(f"edge_margin must be >= 0 or None, got {self.edge_margin!r}")
        if not (self.match_arcsec > 0 and self.match_pixels > 0):
            bad("match_arcsec and match_pixels must be > 0")
        if self.aperture_rule not in ("area", "a"):
            bad(f"aperture_rule must be 'area' or 'a', got {self.aperture_rule!r}")
        if self.aperture_scale is not None and not self.aperture_scale > 0:
            bad(f"aperture_scale must be > 0, got {self.aperture_scale!r}")
        if not 0 < self.aperture_min <= self.aperture_max:
            bad("need 0 < aperture_min <= aperture_max")
        pairs = list(self.size_bins)
        if not pairs or any(hi <= lo for lo, hi in pairs) or any(
                p2[0] < p1[1] for p1, p2 in zip(pairs, pairs[1:])):
            bad(f"size_bins must be increasing, non-overlapping (lo, hi) pairs, "
                f"got {self.size_bins!r}")

    def margin(self, shape: Sequence[int]) -> int:
        """The edge margin in pixels for an image of ``shape``."""
        if self.edge_margin is not None:
            return int(self.edge_margin)
        return int(min(128, min(shape) // 8))

    def radius(self, area, a=None) -> np.ndarray:
        """Aperture radius (px) of stars of segment ``area`` (and semi-major axis ``a``)."""
        area = np.asarray(area, dtype=float)
        if self.aperture_rule == "area":
            scale = 1.0 if self.aperture_scale is None else self.aperture_scale
            r = scale * np.sqrt(area / math.pi)
        else:
            scale = 2.5 if self.aperture_scale is None else self.aperture_scale
            r = scale * np.asarray(a, dtype=float)
        return np.clip(r, self.aperture_min, self.aperture_max)

    def bin_labels(self) -> list[str]:
        """Labels of the size bins, in order (without the overflow label)."""
        return [f"{lo}-{hi}" for lo, hi in self.size_bins]

    def size_bin(self, area) -> np.ndarray:
        """Size-bin label of each area: ``"lo-hi"`` for lo < area <= hi, else ``">hi"``/``"<=lo"``."""
        area = np.atleast_1d(np.asarray(area, dtype=float))
        out = np.full(area.shape, "", dtype="U12")
        for lo, hi in self.size_bins:
            out[(area > lo) & (area <= hi)] = f"{lo}-{hi}"
        first, last = self.size_bins[0][0], self.size_bins[-1][1]
        out[area > last] = f">{last}"
        out[area <= first] = f"<={first}"
        return out


# --------------------------------------------------------------------------- helpers

def _sep():
    import sep

    return sep


def _prepare(image, name: str, what: str) -> np.ndarray:
    # float32: SEP converts every pixel to float (its PIXTYPE) anyway, so the fluxes are
    # those of a float64 copy, at half the memory (an 85-Mpix chip: 0.34 GB per image)
    arr = native(np.asarray(image), np.float32)
    if arr.ndim != 2:
        raise CRBenchDataError(f"{name}: {what} must be a 2-D image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise CRBenchDataError(f"{name}: {what} holds NaN/inf pixels")
    return arr


def _ignore(ignore, shape, name: str) -> np.ndarray:
    if ignore is None:
        return np.zeros(shape, dtype=bool)
    ign = np.ascontiguousarray(np.asarray(ignore, dtype=bool))
    if ign.shape != tuple(shape):
        raise CRBenchDataError(
            f"{name}: the ignore mask has shape {ign.shape} but the image has shape {shape}")
    return ign


def _background(data: np.ndarray, ign: np.ndarray, config: PhotometryConfig, name: str,
                bkg: Background | None = None) -> Background:
    """The background of the clean reference ``data``: ``bkg`` when the caller has it
    (:func:`~pytest_crbench.science.background.background` of the same image and ignore
    mask with the default mesh) and ``config`` asks for the default mesh, else made here."""
    if ign.all():
        raise CRBenchDataError(
            f"{name}: every pixel is ignored (DQ != 0 or saturated); no star can be measured")
    if bkg is not None and config.background_box is None:
        return bkg
    return background(data, ign, box=config.background_box, name=name)


def _inside(x, y, shape, margin) -> np.ndarray:
    ny, nx = shape
    return ((x >= margin) & (x <= nx - 1 - margin) & (y >= margin) & (y <= ny - 1 - margin))


# --------------------------------------------------------------------------- finding

#: SEP's first pixel stack (active object pixels); :func:`_extract` doubles it on overflow.
PIXSTACK = 1 << 21


def _extract(sub: np.ndarray, rms: np.ndarray, ign: np.ndarray, config: "PhotometryConfig",
             name: str):
    """``sep.extract`` of a background-subtracted image.  SEP allocates its pixel stack
    up front (about 30 bytes a pixel: a stack the size of an 85-Mpix chip would be
    2.5 GB), so it starts at :data:`PIXSTACK` and is doubled, up to the image size,
    each time SEP reports it full; the objects do not depend on the stack size."""
    sep = _sep()
    stack = min(PIXSTACK, sub.size)
    mask = ign.astype(np.uint8)
    sep.set_sub_object_limit(4096)
    while True:
        sep.set_extract_pixstack(max(300_000, stack))
        try:
            return sep.extract(sub, config.thresh_sigma, err=rms, mask=mask,
                               minarea=int(config.min_area) + 1)
        except Exception as exc:
            if "pixel buffer full" in str(exc) and stack < sub.size:
                stack = min(2 * stack, sub.size)
                continue
            raise CRBenchDataError(f"{name}: sep source extraction failed ({exc})") from None


def find_stars(clean: np.ndarray, ignore: np.ndarray | None = None,
               config: PhotometryConfig | None = None, *, name: str = "image",
               bkg: Background | None = None) -> np.ndarray:
    """Stars of a clean reference image: a structured array of :data:`STAR_DTYPE`.

    ``star_id`` is the row number until :func:`match_stars` gives group-wide ids.
    Raises :class:`CRBenchDataError` naming ``name`` when the image is all ignored or no
    star passes the criteria (the message says how many objects each criterion removed).
    """
    config = config or PhotometryConfig()
    data = _prepare(clean, name, "the clean reference")
    ign = _ignore(ignore, data.shape, name)
    bkg = _background(data, ign, config, name, bkg)
    rms = bkg.rms_map
    if not bkg.rms > 0:
        raise CRBenchDataError(
            f"{name}: the background RMS of the clean reference is {bkg.rms!r}; a "
            "noise-free image has no detection threshold")
    rms[~(rms > 0)] = bkg.rms
    sub = data - bkg.level  # float32, as SEP's own pixels
    objs = _extract(sub, rms, ign, config, name)
    del sub, rms
    n_all = len(objs)
    a, b = objs["a"].astype(float), objs["b"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = a / b
    lo, hi = config.axis_ratio
    round_ok = np.isfinite(q) & (q <= hi) & (1.0 / q >= lo) & (b > 0)
    margin = config.margin(data.shape)
    edge_ok = _inside(objs["x"], objs["y"], data.shape, margin)
    radius = config.radius(objs["npix"], a)
    keep = round_ok & edge_ok
    clear = np.ones(n_all, dtype=bool)
    idx = np.nonzero(keep)[0]
    clear[idx] = ~touches_ignored(ign, objs["x"][idx], objs["y"][idx], radius[idx])
    keep &= clear
    if not keep.any():
        raise CRBenchDataError(
            f"{name}: no star found on the clean reference: sep found {n_all} object(s) "
            f"above {config.thresh_sigma:g}x the background RMS with more than "
            f"{config.min_area} px; {int((~round_ok).sum())} failed the axis ratio "
            f"{lo:g}-{hi:g}, {int((round_ok & ~edge_ok).sum())} lie within the {margin} px "
            f"edge margin, {int((round_ok & edge_ok & ~clear).sum())} touch ignored pixels")
    objs = objs[keep]
    out = np.zeros(len(objs), dtype=STAR_DTYPE)
    out["star_id"] = np.arange(len(objs))
    for f in ("x", "y", "a", "b", "theta", "peak"):
        out[f] = objs[f]
    out["area"] = objs["npix"]
    out["flux_iso"] = objs["flux"]
    out["radius"] = radius[keep]
    out["size_bin"] = config.size_bin(out["area"])
    return out


# --------------------------------------------------------------------------- matching

def _sky_positions(stars: np.ndarray, header: dict) -> tuple[np.ndarray, np.ndarray]:
    from astropy.io import fits
    from astropy.wcs import WCS

    w = WCS(fits.Header(header), naxis=2)
    ra, dec = w.all_pix2world(stars["x"], stars["y"], 0)
    return np.asarray(ra, float), np.asarray(dec, float)


def _gnomonic(ra, dec, ra0, dec0) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane coordinates (arcsec) about (ra0, dec0); all angles in degrees."""
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def match_stars(star_lists: Sequence[np.ndarray], wcs_headers: Sequence[dict | None] | None = None,
                config: PhotometryConfig | None = None, *, group: str = "group",
                names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Group-wide star ids: one integer array per exposure, aligned with its star list.

    Stars within ``match_arcsec`` on the sky (all exposures have a WCS header) or within
    ``match_pixels`` on the pixel grid (otherwise) get the same id; each star is compared
    with the running mean position of the stars already catalogued, one-to-one, closest
    pairs first.  Stars seen in one exposure only keep an id of their own.  Raises
    :class:`CRBenchDataError` naming the group and exposure when an exposure with stars
    shares none with the other exposures (exposures that do not overlap, or a wrong WCS).
    """
    from scipy.spatial import cKDTree

    config = config or PhotometryConfig()
    n = len(star_lists)
    names = list(names) if names is not None else [f"exposure {i}" for i in range(n)]
    if len(names) != n:
        raise CRBenchDataError(f"group {group!r}: {len(names)} names for {n} star lists")
    use_sky = (wcs_headers is not None and len(wcs_headers) == n
               and all(h for h in wcs_headers))
    coords: list[np.ndarray] = []
    if use_sky:
        sky = [_sky_positions(s, h) for s, h in zip(star_lists, wcs_headers)]
        ref = next((p for p in sky if len(p[0])), None)
        ra0, dec0 = (float(np.mean(ref[0])), float(np.mean(ref[1]))) if ref else (0.0, 0.0)
        for ra, dec in sky:
            xi, eta = _gnomonic(ra, dec, ra0, dec0)
            coords.append(np.column_stack([xi, eta]))
        tol, unit = config.match_arcsec, "arcsec"
    else:
        coords = [np.column_stack([np.asarray(s["x"], float), np.asarray(s["y"], float)])
                  for s in star_lists]
        tol, unit = config.match_pixels, "px"

    cat_sum = np.zeros((0, 2))
    cat_n = np.zeros(0)
    ids: list[np.ndarray] = []
    for pos in coords:
        m = len(pos)
        out = np.full(m, -1, dtype=np.int64)
        if len(cat_n) and m:
            cat = cat_sum / cat_n[:, None]
            dist = cKDTree(cat).sparse_distance_matrix(cKDTree(pos), tol, output_type="ndarray")
            order = np.argsort(dist["v"], kind="stable")
            used = set()
            for k in order:
                i, j = int(dist["i"][k]), int(dist["j"][k])
                if i in used or out[j] >= 0:
                    continue
                used.add(i)
                out[j] = i
        new = np.nonzero(out < 0)[0]
        out[new] = len(cat_n) + np.arange(len(new))
        cat_sum = np.vstack([cat_sum, np.zeros((len(new), 2))])
        cat_n = np.concatenate([cat_n, np.zeros(len(new))])
        np.add.at(cat_sum, out, pos)
        np.add.at(cat_n, out, 1)
        ids.append(out)

    if n > 1:
        counts = np.bincount(np.concatenate(ids), minlength=len(cat_n)) if len(cat_n) else []
        alone = [f"{name!r} ({len(out)} stars)" for name, out in zip(names, ids)
                 if len(out) and not np.any(counts[out] > 1)]
        if alone:
            raise CRBenchDataError(
                f"group {group!r}: no star of exposure(s) {', '.join(alone)} matches a star "
                f"of the other exposures within {tol:g} {unit}; the exposures do not "
                "overlap (or their WCS/pixel grids disagree)")
    return ids


def find_group_stars(cleans: Sequence[np.ndarray], ignores: Sequence[np.ndarray | None],
                     config: PhotometryConfig | None = None, *, group: str = "group",
                     names: Sequence[str] | None = None,
                     wcs_headers: Sequence[dict | None] | None = None) -> list[np.ndarray]:
    """Find, match and harmonise the stars of one group; one star list per exposure.

    Each list carries group-wide ``star_id``s.  Every star gets one aperture radius and
    one size bin in the whole group (from the median of its segment areas); when the
    exposures share a pixel grid (no WCS matching) it also gets one centre (the mean of
    its centroids), so that it is measured identically in every exposure (method.md §4).
    """
    config = config or PhotometryConfig()
    names = list(names) if names is not None else [f"exposure {i}" for i in range(len(cleans))]
    lists = [find_stars(c, i, config, name=star_list_name(group, nm))
             for c, i, nm in zip(cleans, ignores, names)]
    return harmonise_group_stars(lists, config, group=group, names=names,
                                 wcs_headers=wcs_headers)


def star_list_name(group: str, exposure: str) -> str:
    """How :func:`find_group_stars` names one exposure in its error messages."""
    return f"group {group!r}, exposure {exposure!r}"


def harmonise_group_stars(lists: Sequence[np.ndarray], config: PhotometryConfig | None = None,
                          *, group: str = "group", names: Sequence[str] | None = None,
                          wcs_headers: Sequence[dict | None] | None = None) -> list[np.ndarray]:
    """The matching half of :func:`find_group_stars`, on the exposures' :func:`find_stars`
    lists (small: a distributed run finds each list where its reference image lies)."""
    config = config or PhotometryConfig()
    names = list(names) if names is not None else [f"exposure {i}" for i in range(len(lists))]
    ids = match_stars(lists, wcs_headers, config, group=group, names=names)
    use_sky = (wcs_headers is not None and len(wcs_headers) == len(lists)
               and all(h for h in wcs_headers))
    all_ids = np.concatenate(ids)
    all_area = np.concatenate([s["area"] for s in lists]).astype(float)
    all_a = np.concatenate([s["a"] for s in lists])
    all_x = np.concatenate([s["x"] for s in lists])
    all_y = np.concatenate([s["y"] for s in lists])
    uniq, inv = np.unique(all_ids, return_inverse=True)
    med_area = np.array([np.median(all_area[inv == k]) for k in range(len(uniq))])
    med_a = np.array([np.median(all_a[inv == k]) for k in range(len(uniq))])
    mean_x = np.bincount(inv, all_x) / np.bincount(inv)
    mean_y = np.bincount(inv, all_y) / np.bincount(inv)
    out = []
    start = 0
    for s, i in zip(lists, ids):
        k = inv[start:start + len(s)]
        start += len(s)
        s = s.copy()
        s["star_id"] = i
        s["area"] = np.round(med_area[k]).astype(np.int64)
        s["radius"] = config.radius(med_area[k], med_a[k])
        s["size_bin"] = config.size_bin(med_area[k])
        if not use_sky:
            s["x"], s["y"] = mean_x[k], mean_y[k]
        out.append(s)
    return out


# --------------------------------------------------------------------------- measuring

def measure_stars(original: np.ndarray, clean: np.ndarray, cleaned: np.ndarray,
                  err: np.ndarray | None, ignore: np.ndarray | None, stars: np.ndarray,
                  config: PhotometryConfig | None = None, *, exposure: str = "image",
                  bkg: Background | None = None) -> np.ndarray:
    """Photometry of ``stars`` in the three images of one exposure (:data:`PHOT_DTYPE`).

    Same centre and radius in all three images, the clean reference's background map
    subtracted from each, σ_F from ``err`` (see the module docstring).  Stars whose
    aperture leaves the image or holds an ignored pixel are dropped.
    """
    config = config or PhotometryConfig()
    sep = _sep()
    orig = _prepare(original, exposure, "the original image")
    ref = _prepare(clean, exposure, "the clean reference")
    cln = _prepare(cleaned, exposure, "the detector-cleaned image")
    for what, arr in (("clean reference", ref), ("detector-cleaned image", cln)):
        if arr.shape != orig.shape:
            raise CRBenchDataError(f"{exposure}: the {what} has shape {arr.shape} but the "
                                   f"original has shape {orig.shape}")
    ign = _ignore(ignore, orig.shape, exposure)
    bkg = _background(ref, ign, config, exposure, bkg)
    back = bkg.level
    if err is None:
        rms_map = bkg.rms_map

        def err_rows(a0, a1):
            var = (np.asarray(rms_map[a0:a1], np.float64) ** 2
                   + np.clip(ref[a0:a1] - np.asarray(back[a0:a1], np.float64), 0, None))
            return np.sqrt(var)
    else:
        errimg = _prepare(err, exposure, "the error image")
        if errimg.shape != orig.shape:
            raise CRBenchDataError(f"{exposure}: the error image has shape {errimg.shape} "
                                   f"but the original has shape {orig.shape}")

        def err_rows(a0, a1):
            return np.abs(errimg[a0:a1])
    stars = np.asarray(stars)
    out = np.zeros(len(stars), dtype=PHOT_DTYPE)
    if len(stars) == 0:
        return out
    x = np.ascontiguousarray(stars["x"], dtype=float)
    y = np.ascontiguousarray(stars["y"], dtype=float)
    r = np.ascontiguousarray(stars["radius"], dtype=float)
    fluxes = {}
    for key, img in (("original", orig), ("clean", ref), ("cleaned", cln)):
        # row windows of the image minus the clean reference's background (float32)
        f, fe, flag = sum_circles(lambda a0, a1, img=img: img[a0:a1] - back[a0:a1],
                                  orig.shape[0], x, y, r, err_rows=err_rows, subpix=5)
        fluxes[key] = f
        if key == "clean":
            ferr, flags = fe, flag
    keep = ((flags & sep.APER_TRUNC) == 0) & ~touches_ignored(ign, x, y, r)
    out["star_id"] = stars["star_id"]
    out["exposure"] = exposure
    out["x"], out["y"], out["radius"] = x, y, r
    out["area"] = stars["area"]
    out["size_bin"] = stars["size_bin"] if "size_bin" in stars.dtype.names else \
        config.size_bin(stars["area"])
    out["flux_original"] = fluxes["original"]
    out["flux_clean"] = fluxes["clean"]
    out["flux_cleaned"] = fluxes["cleaned"]
    out["flux_err"] = ferr
    fc = fluxes["clean"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio_cleaned"] = np.where(fc > 0, fluxes["cleaned"] / fc, np.nan)
        out["ratio_original"] = np.where(fc > 0, fluxes["original"] / fc, np.nan)
        out["contaminated"] = np.abs(fluxes["original"] - fc) > config.contaminated_sigma * ferr
        out["anomalous"] = np.abs(fluxes["cleaned"] - fc) > config.anomalous_sigma * ferr
    return out[keep]
