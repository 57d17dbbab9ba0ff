"""The photometric figures of a photometry table (method.md section 4, the paper's numbers).

The paper's fractions are over *contaminated* stars ("among stars affected by cosmic
rays, 10 % outside [0.9, 1.1], 55 % inside [0.97, 1.03]"); the same fractions over
*all* stars carry ``_of_all``.  An undefined fraction (empty population) is None with
the reason, never 0.  Tables come from
:func:`pytest_crbench.science.photometry.measure_stars` (:data:`PHOT_DTYPE` rows).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from pytest_crbench.science.photometry import PHOT_DTYPE, PhotometryConfig

__all__ = ["table_columns", "stars_to_rows", "photometry_summary", "concatenate"]


def table_columns(stars) -> dict[str, np.ndarray]:
    """Columns of a structured array, or of a list of dicts (rows)."""
    if isinstance(stars, np.ndarray) and stars.dtype.names:
        return {k: stars[k] for k in stars.dtype.names}
    rows = list(stars)
    if not rows:
        return {}
    return {k: np.array([row[k] for row in rows]) for k in rows[0]}


def stars_to_rows(stars: np.ndarray) -> list[dict[str, Any]]:
    """A photometry table as a list of plain dicts (JSON-ready: numpy scalars → Python)."""
    names = stars.dtype.names or ()
    return [{k: (None if isinstance(v := row[k].item(), float) and not math.isfinite(v)
                 else v) for k in names} for row in stars]


def _block(col: dict[str, np.ndarray], sel: np.ndarray) -> dict[str, Any]:
    n = int(sel.sum())
    cont = col["contaminated"].astype(bool) & sel
    anom = col["anomalous"].astype(bool) & sel
    ratio = col["ratio_cleaned"].astype(float)
    finite = np.isfinite(ratio)
    inside = (ratio >= 0.97) & (ratio <= 1.03) & finite
    outside = ((ratio < 0.9) | (ratio > 1.1)) & finite
    nc = int(cont.sum())
    nc_r = int((cont & finite).sum())
    na_r = int((sel & finite).sum())
    reasons: dict[str, str] = {}

    def frac(num, den, key, why):
        if den == 0:
            reasons[key] = why
            return None
        return float(num) / float(den)

    no_stars = "no star measured" if n == 0 else ""
    no_cont = no_stars or "no contaminated star"
    out = {
        "n": n, "n_contaminated": nc, "n_anomalous": int(anom.sum()),
        "n_anomalous_contaminated": int((anom & cont).sum()),
        "contaminated": frac(nc, n, "contaminated", no_stars),
        "anomalous": frac(int((anom & cont).sum()), nc, "anomalous", no_cont),
        "anomalous_of_all": frac(int(anom.sum()), n, "anomalous_of_all", no_stars),
        "inside_97_103": frac(int((inside & cont).sum()), nc_r, "inside_97_103",
                              no_cont if nc == 0 else "no finite flux ratio"),
        "outside_90_110": frac(int((outside & cont).sum()), nc_r, "outside_90_110",
                               no_cont if nc == 0 else "no finite flux ratio"),
        "inside_97_103_of_all": frac(int((inside & sel).sum()), na_r, "inside_97_103_of_all",
                                     no_stars or "no finite flux ratio"),
        "outside_90_110_of_all": frac(int((outside & sel).sum()), na_r,
                                      "outside_90_110_of_all",
                                      no_stars or "no finite flux ratio"),
    }
    out["reasons"] = reasons
    return out


def photometry_summary(stars, config: PhotometryConfig | None = None) -> dict[str, Any]:
    """Photometric gate figures of a photometry table, overall and per size bin.

    ``stars``: a :data:`PHOT_DTYPE` array (or a list of its rows as dicts).  Returns::

        {"population": <text>, "overall": BLOCK, "by_size": {"16-50": BLOCK, ...}}

    where a BLOCK holds counts ``n``, ``n_contaminated``, ``n_anomalous``,
    ``n_anomalous_contaminated`` and the fractions

    * ``contaminated``: contaminated stars / all stars;
    * ``anomalous``, ``inside_97_103``, ``outside_90_110``: over **contaminated** stars
      (the paper's population; the two ratio fractions over contaminated stars with a
      finite ratio);
    * ``anomalous_of_all``, ``inside_97_103_of_all``, ``outside_90_110_of_all``: the same
      over all stars.

    An undefined fraction (empty population) is ``None`` and ``BLOCK["reasons"][key]``
    says why — never 0.
    """
    config = config or PhotometryConfig()
    col = table_columns(stars)
    if not col:
        col = {k: np.zeros(0, dtype=PHOT_DTYPE[k]) for k in PHOT_DTYPE.names}
    n = len(col["contaminated"])
    labels = config.bin_labels()
    by_size = {lab: _block(col, np.asarray(col["size_bin"]) == lab) for lab in labels}
    return {
        "population": ("contaminated/anomalous_of_all/*_of_all: over all measured stars; "
                       "anomalous, inside_97_103, outside_90_110: over contaminated stars "
                       "(|F_original - F_clean| > 3 sigma_F), as in the paper"),
        "overall": _block(col, np.ones(n, dtype=bool)),
        "by_size": by_size,
    }


def concatenate(tables: Iterable[np.ndarray]) -> np.ndarray:
    """Concatenate photometry tables (an empty table when there are none)."""
    tables = [np.asarray(t, dtype=PHOT_DTYPE) for t in tables]
    return np.concatenate(tables) if tables else np.zeros(0, dtype=PHOT_DTYPE)
