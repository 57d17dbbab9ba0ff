"""Scoring against the exact injected cosmic-ray charge (``CRTRUTH``) of simulated data.

A reference mask is itself a measurement (method.md §1): it misses faint hits and flags
noise next to strong ones.  Simulated exposures carry what the paper could not have, the
charge every cosmic ray deposited in every pixel.  From it:

* a **true cosmic-ray pixel** is one whose injected charge exceeds ``n_sigma`` × the
  pixel's noise without the cosmic ray, σ = sqrt(read noise² + max(sci − CRTRUTH, 0))
  (electrons) — a hit any method could see;
* a pixel with smaller non-zero charge is **excluded**: neither a cosmic ray nor clean,
  it is left out of both classes (and counted), like the ignored pixels;
* everything else is clean.

:func:`audit_reference` scores the reference mask against the truth per star region.
Plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_crbench._util import row_strips
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.exposures import Exposure, Group, Reference
from pytest_crbench.science.metrics import Counts, precision, recall, region_tables

__all__ = ["DEFAULT_TRUTH_SNR", "TruthClasses", "truth_classes", "AuditCounts",
           "audit_counts", "audit_reference", "pooled_audit"]

#: Default significance of a true cosmic-ray pixel, in units of the pixel noise.
DEFAULT_TRUTH_SNR = 5.0


@dataclass(frozen=True)
class TruthClasses:
    """The truth of one exposure: ``crmask`` (significant charge), ``excluded`` (faint
    non-zero charge) and the ``n_sigma`` that separates them."""

    crmask: np.ndarray
    excluded: np.ndarray
    n_sigma: float

    def label(self) -> str:
        """How rows name this truth: ``CRTRUTH > 5 sigma``."""
        return f"CRTRUTH > {self.n_sigma:g} sigma"


def truth_classes(exp: Exposure, n_sigma: float = DEFAULT_TRUTH_SNR) -> TruthClasses | None:
    """The true and excluded cosmic-ray pixels of ``exp``; ``None`` without ``CRTRUTH``."""
    if not n_sigma > 0:
        raise CRBenchConfigError(f"truth_snr: expected a number > 0, got {n_sigma!r}")
    if exp.crtruth is None:
        return None
    charge = exp.crtruth
    significant = np.empty(charge.shape, bool)
    excluded = np.empty(charge.shape, bool)
    for s in row_strips(charge.shape[0]):  # the float temporaries of one strip
        noise = np.sqrt(exp.read_noise ** 2 + np.maximum(exp.sci[s] - charge[s], 0))
        significant[s] = charge[s] > n_sigma * noise
        excluded[s] = (charge[s] > 0) & ~significant[s]
    return TruthClasses(significant, excluded, float(n_sigma))


@dataclass(frozen=True)
class AuditCounts:
    """The reference mask of one exposure and region against the truth.

    ``any``: against every pixel with injected charge (precision, recall);
    ``significant``: against the true cosmic-ray pixels (:func:`truth_classes`) with the
    excluded ones left out (the recall that matters: hits any method can see).
    """

    any: Counts
    significant: Counts
    truth_pixels: int
    valid_pixels: int

    def __add__(self, other: "AuditCounts") -> "AuditCounts":
        return AuditCounts(self.any + other.any, self.significant + other.significant,
                           self.truth_pixels + other.truth_pixels,
                           self.valid_pixels + other.valid_pixels)

    def as_dict(self) -> dict:
        """Counts and scores, flat and JSON-able."""
        return {**self.any.as_dict(),
                "tp_significant": self.significant.tp, "fn_significant": self.significant.fn,
                "precision": precision(self.any).value, "recall": recall(self.any).value,
                "recall_significant": recall(self.significant).value,
                "truth_fraction": (self.truth_pixels / self.valid_pixels
                                   if self.valid_pixels else None)}


def audit_counts(mask: np.ndarray, ignore: np.ndarray, truth: TruthClasses,
                 rmap: np.ndarray | None = None, ks=()) -> dict[str, AuditCounts]:
    """:class:`AuditCounts` of reference ``mask`` in the whole image (``"full"``) and in
    every star region ``k`` of ``ks`` (``rmap >= k``), keyed by region name, in one pass
    over the pixels (:func:`~pytest_crbench.science.metrics.region_tables`).  The pixels
    with injected charge are the true and the excluded ones of ``truth`` (no charge
    image is read)."""
    # masks 0, 1, 2: the reference mask, the true and the excluded cosmic-ray pixels
    tables = region_tables([mask, truth.crmask, truth.excluded], ignore, rmap, ks)
    return {name: AuditCounts(t.confusion(0, (1, 2)), t.confusion(0, 1, leave_out=2),
                              t.count((1, 2)), t.count())
            for name, t in tables.items()}


def audit_reference(group: Group, reference: Reference, rmaps: list[np.ndarray] | None = None,
                    ks=(), n_sigma: float = DEFAULT_TRUTH_SNR) -> list[dict]:
    """The reference mask of every exposure with ``CRTRUTH``, audited per region.

    ``rmaps[i]`` is the region map of exposure *i*
    (:func:`~pytest_crbench.science.regions.region_map`); the regions are the whole image
    (``"full"``) and ``rmap >= k`` for every ``k`` of ``ks`` (default: no region map,
    the whole image only).  One row per exposure and region: group, exposure, region,
    the truth used, and :meth:`AuditCounts.as_dict`.  Ignored pixels are excluded;
    exposures without truth (real data) are left out.
    """
    rows = []
    for i, (exp, mask, ignore) in enumerate(zip(group.exposures, reference.crmask,
                                                reference.ignore)):
        truth = truth_classes(exp, n_sigma)
        if truth is None:
            continue
        rmap = rmaps[i] if rmaps is not None else None
        for name, counts in audit_counts(mask, ignore, truth, rmap,
                                         ks if rmap is not None else ()).items():
            rows.append({"group": group.name, "exposure": exp.name, "region": name,
                         "truth": truth.label(), **counts.as_dict()})
    return rows


def pooled_audit(rows: list[dict], region: str = "full") -> dict:
    """Pooled audit (sums of counts) of the rows of one ``region``."""
    rows = [r for r in rows if r.get("region", "full") == region]
    total = sum((AuditCounts(Counts(r["tp"], r["fp"], r["fn"]),
                             Counts(r["tp_significant"], 0, r["fn_significant"]),
                             0, 0) for r in rows), AuditCounts(Counts(), Counts(), 0, 0))
    out = total.as_dict()
    out.pop("truth_fraction")
    return {**out, "n_exposures": len(rows), "region": region}
