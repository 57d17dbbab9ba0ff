"""Cosmic-ray density against photometric damage (method.md section 5, the paper's Fig. 6).

x = the fraction of an exposure's (non-ignored) pixels in the reference CR mask;
y = per exposure, the fraction of its stars that are contaminated, and the fraction of
its stars with an anomalous detector result (all stars, and per size bin — the paper's
"fraction of anomalous results per star-size bin" is over all stars of the bin).
A least-squares line and Pearson's r, p are fitted to every y-quantity over all exposures
of all groups.  :func:`max_exposure_time` inverts the line: the longest exposure whose
predicted y stays below a user level, with the CR fraction per second of exposure
measured from the same data (:func:`cr_fraction_per_second`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.photometry_summary import table_columns

__all__ = ["FitResult", "linear_fit", "exposure_point", "cr_fraction_per_second",
           "density_relation", "max_exposure_time"]


@dataclass(frozen=True)
class FitResult:
    """y = slope·x + intercept by least squares, with Pearson's r and its two-sided p.

    Identical (to rounding) to ``scipy.stats.linregress`` / ``scipy.stats.pearsonr``.
    ``r``/``p`` are None when y is constant (correlation undefined); ``p`` is None with
    fewer than 3 points; ``stderr`` is the standard error of the slope (None for n < 3).
    """

    slope: float
    intercept: float
    r: float | None
    p: float | None
    n: int
    stderr: float | None = None
    intercept_stderr: float | None = None
    x_min: float = math.nan
    x_max: float = math.nan

    def predict(self, x):
        return self.slope * np.asarray(x, dtype=float) + self.intercept

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_fit(x, y) -> FitResult:
    """Least-squares line through (x, y) with Pearson's r and p (t-test, n − 2 dof).

    Raises :class:`CRBenchDataError` for fewer than 2 finite points, mismatched lengths
    or a constant x (no line can be fitted).
    """
    from scipy import stats

    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise CRBenchDataError(f"linear_fit: x has {x.size} values but y has {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 2:
        raise CRBenchDataError(f"linear_fit: need at least 2 finite points, got {n}")
    xm, ym = x.mean(), y.mean()
    dx, dy = x - xm, y - ym
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx <= 0 or not np.ptp(x) > 0:
        raise CRBenchDataError(
            f"linear_fit: all {n} x values are equal ({x[0]:g}); no line can be fitted")
    slope = sxy / sxx
    intercept = float(ym - slope * xm)
    r = p = stderr = istderr = None
    if syy > 0 and np.ptp(y) > 0:
        r = float(np.clip(sxy / math.sqrt(sxx * syy), -1.0, 1.0))
    if n >= 3:
        dof = n - 2
        if r is not None:
            if abs(r) == 1.0:
                p = 0.0
            else:
                t = r * math.sqrt(dof / ((1.0 - r) * (1.0 + r)))
                p = float(2.0 * stats.t.sf(abs(t), dof))
        resid = max(syy - slope * sxy, 0.0)
        stderr = math.sqrt(resid / dof / sxx)
        istderr = stderr * math.sqrt(float(x @ x) / n)
    return FitResult(slope=float(slope), intercept=intercept, r=r, p=p, n=n,
                     stderr=stderr, intercept_stderr=istderr,
                     x_min=float(x.min()), x_max=float(x.max()))


def exposure_point(record: Mapping[str, Any], size_bins: Iterable[str]) -> dict[str, Any]:
    """The y-quantities of one exposure record (see :func:`density_relation`)."""
    for key in ("cr_fraction", "stars"):
        if key not in record:
            raise CRBenchDataError(
                f"density record {record.get('exposure', '?')!r}: missing key {key!r}")
    col = table_columns(record["stars"])
    n = len(col.get("contaminated", []))
    cont = np.asarray(col.get("contaminated", []), bool)
    anom = np.asarray(col.get("anomalous", []), bool)
    sbin = np.asarray(col.get("size_bin", []), str)
    y: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    y["contaminated"] = float(cont.mean()) if n else None
    y["anomalous"] = float(anom.mean()) if n else None
    counts["contaminated"] = counts["anomalous"] = n
    for lab in size_bins:
        sel = sbin == lab
        k = int(sel.sum())
        y[f"anomalous_{lab}"] = float(anom[sel].mean()) if k else None
        counts[f"anomalous_{lab}"] = k
    return {"group": record.get("group", ""), "exposure": record.get("exposure", ""),
            "exptime": record.get("exptime"), "cr_fraction": float(record["cr_fraction"]),
            "y": y, "n": counts}


def cr_fraction_per_second(records: Iterable[Mapping[str, Any]]) -> float | None:
    """CR pixel fraction per second of exposure: least squares through the origin,
    Σ f·t / Σ t² over the records with an exposure time (None when none has one)."""
    f, t = [], []
    for rec in records:
        et = rec.get("exptime")
        if et is not None and et > 0 and rec.get("cr_fraction") is not None:
            f.append(float(rec["cr_fraction"]))
            t.append(float(et))
    if not t:
        return None
    f, t = np.asarray(f), np.asarray(t)
    return float((f @ t) / (t @ t))


def density_relation(records: Iterable[Mapping[str, Any]],
                     size_bins: Iterable[str] = ("16-50", "50-200", "200-400"),
                     ) -> dict[str, dict[str, Any]]:
    """Fit every y-quantity against the CR pixel fraction, over all exposures.

    ``records``: one dict per exposure (of all groups) with keys ``group``, ``exposure``,
    ``exptime`` (s), ``cr_fraction`` (reference CR pixels / non-ignored pixels) and
    ``stars`` (that exposure's photometry table for one detector, from
    :func:`pytest_crbench.science.photometry.measure_stars`).

    Returns ``{quantity: {"x", "y", "labels", "n_stars", "fit", "reason"}}`` for the
    quantities ``contaminated``, ``anomalous`` and ``anomalous_<bin>`` per size bin: the
    points used (exposures where the quantity is defined, i.e. with stars in the bin),
    their ``group/exposure`` labels, star counts, the :class:`FitResult` (None when no
    line can be fitted) and ``reason`` (why not, else None).
    """
    size_bins = list(size_bins)
    points = [exposure_point(r, size_bins) for r in records]
    quantities = ["contaminated", "anomalous"] + [f"anomalous_{b}" for b in size_bins]
    out: dict[str, dict[str, Any]] = {}
    for q in quantities:
        pts = [p for p in points if p["y"][q] is not None]
        entry: dict[str, Any] = {
            "x": [p["cr_fraction"] for p in pts],
            "y": [p["y"][q] for p in pts],
            "labels": [f"{p['group']}/{p['exposure']}" for p in pts],
            "n_stars": [p["n"][q] for p in pts],
            "n_skipped": len(points) - len(pts),
            "fit": None,
            "reason": None,
        }
        try:
            entry["fit"] = linear_fit(entry["x"], entry["y"])
        except CRBenchDataError as exc:
            entry["reason"] = str(exc).replace("linear_fit: ", "")
        out[q] = entry
    return out


def max_exposure_time(fit: FitResult | None, cr_fraction_per_second: float | None,
                      level: float) -> float | None:
    """Longest exposure (s) whose fitted y stays at or below ``level``.

    Solves ``level = slope·x + intercept`` for the CR fraction x and divides by the CR
    fraction per second.  Returns ``0.0`` when the level is reached already at zero
    density (intercept ≥ level with a positive slope, or any slope when intercept >
    level and slope ≤ 0), and ``None`` when the relation sets no limit (slope ≤ 0 and the
    intercept below the level) or cannot be used (no fit, no positive CR rate).  The
    result may be an extrapolation beyond ``fit.x_max``: compare ``x = t × rate`` with it.
    """
    if fit is None or cr_fraction_per_second is None or not cr_fraction_per_second > 0:
        return None
    if not math.isfinite(level):
        raise CRBenchDataError(f"max_exposure_time: level must be finite, got {level!r}")
    if fit.slope <= 0:
        return None if fit.intercept <= level else 0.0
    x_star = (level - fit.intercept) / fit.slope
    if x_star <= 0:
        return 0.0
    return float(x_star / cr_fraction_per_second)
