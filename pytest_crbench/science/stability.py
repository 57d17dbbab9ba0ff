"""Stability of a detector over time (method.md section 6, the paper's Figs. 7 and 8).

Per group (one observation date): F1 and F2 of the cosmic rays *on stars* (TP/FP/FN of
the star region, from :mod:`pytest_crbench.science.metrics`) and the RMS of all its stars' flux
ratios F_cleaned/F_clean after trimming the top and bottom 5 %.  Over groups: the mean,
the standard deviation (ddof = 1) and the band mean ± 3σ; groups outside the band are
named.

RMS definition: the paper's "RMS of the flux ratios" is taken about the ideal ratio 1,
``sqrt(mean((ratio − 1)²))`` over the trimmed ratios, so that a bias (a detector that
eats star light) counts as well as scatter; ``center=None`` gives the RMS about the mean
(the standard deviation) instead.

Caveat (documented, not hidden): when the band's σ is computed from all groups
including the tested one, a single group can only lie outside mean ± kσ if there are
more than k² + 1 groups (the largest possible |z| of one point among n is
(n − 1)/√n): with 3σ, ten groups or fewer can never produce an outlier.
``exclude_self=True`` therefore compares each group with the *other* groups, through a
prediction interval rather than a bare ±3σ: with m other groups of mean x̄ and standard
deviation s, a new group lies in x̄ ± t·s·√(1 + 1/m) with the same two-sided probability
as ±nσ of a normal law (99.73 % for 3σ), t being Student's quantile with m − 1 degrees of
freedom.  A bare 3σ from 2–5 values would be crossed by chance far more often than the
99.73 % it claims; for many groups the interval tends to ±3σ.  Each group's interval is
reported under ``per_group``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Iterable, Mapping

import numpy as np

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.metrics import Counts, fbeta

__all__ = ["trimmed_rms", "group_stability"]


def trimmed_rms(ratios, trim: float = 0.05, center: float | None = 1.0) -> float | None:
    """RMS of ``ratios`` about ``center`` after dropping the lowest and highest ``trim``.

    ``floor(trim × n)`` values are dropped at each end (non-finite ratios are dropped
    first).  ``center=None`` uses the mean of the kept values.  None when nothing is left.
    """
    if not 0 <= trim < 0.5:
        raise CRBenchDataError(f"trimmed_rms: trim must be in [0, 0.5), got {trim!r}")
    r = np.asarray(ratios, dtype=float).ravel()
    r = np.sort(r[np.isfinite(r)])
    k = int(math.floor(trim * r.size))
    if k:
        r = r[k:r.size - k]
    if r.size == 0:
        return None
    c = r.mean() if center is None else float(center)
    return float(np.sqrt(np.mean((r - c) ** 2)))


def _date_key(date: str) -> tuple:
    try:
        return (0, datetime.fromisoformat(str(date).replace("Z", "")), "")
    except ValueError:
        return (1, datetime.min, str(date))


def _band(values: dict[str, float | None], nsigma: float, exclude_self: bool,
          what: str) -> dict[str, Any]:
    names = [k for k, v in values.items() if v is not None]
    vals = np.array([values[k] for k in names], dtype=float)
    out: dict[str, Any] = {"n": len(names), "mean": None, "std": None, "lower": None,
                           "upper": None, "outliers": [], "reason": None}
    if len(names) == 0:
        out["reason"] = f"no group has a defined {what}"
        return out
    out["mean"] = float(vals.mean())
    if len(names) < 2:
        out["reason"] = f"one group only: the spread of {what} over groups is undefined"
        return out
    std = float(vals.std(ddof=1))
    out["std"] = std
    out["lower"] = out["mean"] - nsigma * std
    out["upper"] = out["mean"] + nsigma * std
    if exclude_self:
        if len(names) < 3:
            out["reason"] = "exclude_self needs at least 3 groups"
            return out
        from scipy import stats

        coverage = math.erf(nsigma / math.sqrt(2))  # two-sided coverage of ±nσ
        out["coverage"] = coverage
        out["per_group"] = {}
        for i, name in enumerate(names):
            rest = np.delete(vals, i)
            m = len(rest)
            mean, sd = float(rest.mean()), float(rest.std(ddof=1))
            factor = float(stats.t.ppf(0.5 + coverage / 2, df=m - 1)) * math.sqrt(1 + 1 / m)
            lower, upper = mean - factor * sd, mean + factor * sd
            out["per_group"][name] = {"value": float(vals[i]), "mean": mean, "std": sd,
                                      "factor": factor, "lower": lower, "upper": upper}
            if not lower <= vals[i] <= upper:
                out["outliers"].append(name)
    else:
        for name, v in zip(names, vals):
            if v < out["lower"] or v > out["upper"]:
                out["outliers"].append(name)
    return out


def group_stability(records: Iterable[Mapping[str, Any]], *, trim: float = 0.05,
                    nsigma: float = 3.0, center: float | None = 1.0,
                    exclude_self: bool = False) -> dict[str, Any]:
    """F1, F2 and trimmed ratio RMS per group, and their band over groups.

    ``records``: one dict per group with ``group`` (name), ``date`` (ISO date of the
    observation), ``tp``, ``fp``, ``fn`` (cosmic-ray pixel counts in the star region)
    and ``ratios`` (F_cleaned/F_clean of all the group's stars, all exposures).

    Returns ``{"groups": [...], "f1": BAND, "f2": BAND, "rms": BAND, "nsigma", "trim"}``;
    ``groups`` are sorted by date, each ``{group, date, tp, fp, fn, f1, f2, rms,
    n_ratios, reasons}``; a BAND is ``{n, mean, std, lower, upper, outliers, reason}``
    with ``outliers`` the names of the groups outside mean ± nsigma·std.  Undefined values
    are None with a reason.
    """
    rows = []
    seen = set()
    for rec in records:
        name = str(rec.get("group", ""))
        for key in ("tp", "fp", "fn"):
            v = rec.get(key)
            if v is None or int(v) < 0:
                raise CRBenchDataError(f"group {name!r}: {key} must be a count >= 0, got {v!r}")
        if name in seen:
            raise CRBenchDataError(f"group {name!r} appears twice in the stability records")
        seen.add(name)
        c = Counts(int(rec["tp"]), int(rec["fp"]), int(rec["fn"]))
        reasons = {}
        f1, f2 = fbeta(c, 1.0), fbeta(c, 2.0)
        if f1.value is None:
            reasons["f1"] = reasons["f2"] = f1.reason
        ratios = np.asarray(rec.get("ratios", []), dtype=float).ravel()
        rms = trimmed_rms(ratios, trim, center)
        if rms is None:
            reasons["rms"] = "no star with a finite flux ratio"
        rows.append({"group": name, "date": str(rec.get("date", "")), "tp": c.tp,
                     "fp": c.fp, "fn": c.fn, "f1": f1.value, "f2": f2.value, "rms": rms,
                     "n_ratios": int(np.isfinite(ratios).sum()), "reasons": reasons})
    rows.sort(key=lambda r: _date_key(r["date"]))
    out: dict[str, Any] = {"groups": rows, "nsigma": nsigma, "trim": trim,
                           "center": center, "exclude_self": exclude_self}
    for what in ("f1", "f2", "rms"):
        out[what] = _band({r["group"]: r[what] for r in rows}, nsigma, exclude_self, what)
    return out
