"""Threshold sweeps: ROC and precision–recall curves of probability detectors.

A detector that returns a per-pixel cosmic-ray probability is scored at one threshold
(0.5 for deepCR) by :mod:`pytest_crbench.science.metrics`.  One operating point can
mislead a comparison: a retrained model that trades precision for recall looks worse at
0.5 and better at 0.8.  This module scores every threshold of a fixed grid at once,
without keeping any probability map: per star region, it accumulates two histograms over
the grid — the probabilities of reference cosmic-ray pixels (positives) and of the other
non-ignored pixels (negatives) — exposure by exposure, in the same pass as the pixel
scores.  Histograms add, so a dataset's sweep is the sum of its exposures'.

Definitions (all pooled over the exposures of a dataset, ignored pixels excluded):

threshold grid :data:`THRESHOLDS`
    1,641 values from 0 to 1: every multiple of 0.001, plus logistic steps of 0.05 in
    logit from −16 to 16 (probabilities within 1e-7 of 0 or 1, where a U-Net's
    sigmoid output piles up).  0.5 is on the grid.
predicted positive at threshold t
    ``probability >= t`` (NaN counts as 0).  The package's masks use ``> t`` (:func:`~pytest_crbench.detectors.base.threshold_mask`); the two
    differ only for pixels exactly at t.
TPR, FPR, precision at t
    TP/P, FP/N, TP/(TP+FP) (undefined, NaN, where nothing is predicted).
ROC curve, AUC
    the points (FPR, TPR) of every grid threshold plus (0, 0) (nothing predicted);
    the AUC is the trapezoidal area under them.  A perfect separator has AUC 1, a
    detector that ranks at random 0.5.
average precision (AP)
    the area under the precision–recall step curve, Σ (R_i − R_{i+1}) · P_i over
    thresholds in increasing order (scikit-learn's definition on this grid).
TPR at a fixed FPR f — the convention of Zhang & Bloom (2020), who quote deepCR's TPR at
FPR 0.05 % and 0.5 % (:data:`FIXED_FPRS`)
    TP and FP are interpolated linearly between the two adjacent grid thresholds whose
    FPRs bracket f (the ROC curve's straight segment between them); TPR = TP/P and
    precision = TP/(TP+FP) follow from the interpolated counts.  Beyond the
    last threshold lies the point "nothing flagged" (0, 0), so every f is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pytest_crbench._util import row_strips
from pytest_crbench.science.regions import region_levels, region_name

__all__ = ["FIXED_FPRS", "THRESHOLDS", "Curve", "OperatingPoint", "ThresholdSweep",
           "at_baseline_fpr", "operating_fpr", "threshold_grid"]

#: The deepCR paper's fixed false-positive rates (0.05 % and 0.5 %).
FIXED_FPRS = (0.0005, 0.005)


def threshold_grid() -> np.ndarray:
    """The fixed, sorted threshold grid (float64, first value 0, last value 1)."""
    linear = np.round(np.linspace(0.0, 1.0, 1001), 6)
    logit = 1.0 / (1.0 + np.exp(-np.linspace(-16.0, 16.0, 641)))
    return np.unique(np.concatenate([linear, logit]))


#: The threshold grid every sweep uses (see :func:`threshold_grid`).
THRESHOLDS = threshold_grid()


@dataclass(frozen=True)
class OperatingPoint:
    """A detector's scores at one false-positive rate (or why there are none)."""

    fpr: float
    tpr: float | None
    precision: float | None
    #: the bracketing grid thresholds (None for the point beyond the grid)
    thresholds: tuple[float | None, float | None] | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {"fpr": self.fpr, "tpr": self.tpr, "precision": self.precision,
                "thresholds": list(self.thresholds) if self.thresholds else None,
                "reason": self.reason}


@dataclass(frozen=True)
class Curve:
    """Cumulative counts of one region over :data:`THRESHOLDS` (index i: ``p >= t_i``)."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    negatives: int

    @property
    def tpr(self) -> np.ndarray:
        return self.tp / self.positives if self.positives else np.full(self.tp.shape, np.nan)

    @property
    def fpr(self) -> np.ndarray:
        return self.fp / self.negatives if self.negatives else np.full(self.fp.shape, np.nan)

    @property
    def precision(self) -> np.ndarray:
        flagged = self.tp + self.fp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(flagged > 0, self.tp / np.maximum(flagged, 1), np.nan)

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """(FPR, TPR) in order of decreasing threshold: (0, 0) (nothing flagged), the
        grid from 1 down to 0, ending at (1, 1) (threshold 0 flags every pixel)."""
        return (np.concatenate([[0.0], self.fpr[::-1]]),
                np.concatenate([[0.0], self.tpr[::-1]]))

    def undefined(self) -> str | None:
        if not self.positives:
            return "no reference cosmic-ray pixels in the region"
        if not self.negatives:
            return "no pixels without cosmic rays in the region"
        return None

    def auc(self) -> float | None:
        """Area under the ROC curve (None where there are no positives or negatives)."""
        if self.undefined():
            return None
        x, y = self.roc()
        return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))

    def average_precision(self) -> float | None:
        """Area under the precision–recall step curve (None without positives)."""
        if not self.positives:
            return None
        recall = np.concatenate([self.tpr, [0.0]])
        precision = np.nan_to_num(self.precision, nan=1.0)
        return float(np.sum((recall[:-1] - recall[1:]) * precision))

    def at_fpr(self, target: float) -> OperatingPoint:
        """TPR and precision at false-positive rate ``target`` (see the module docstring).

        Beyond the last grid threshold (1) lies the point "nothing flagged" (0, 0), so
        every rate from 0 to 1 is reachable; its threshold is reported as None.
        """
        why = self.undefined()
        if why:
            return OperatingPoint(target, None, None, reason=why)
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"a false-positive rate is in [0, 1], got {target}")
        tp = np.concatenate([self.tp, [0]]).astype(np.float64)
        fp = np.concatenate([self.fp, [0]]).astype(np.float64)
        t = self.thresholds.tolist() + [None]
        fp_target = target * self.negatives
        j = int(np.nonzero(fp <= fp_target)[0][0])  # fp is non-increasing; fp[-1] = 0
        if j == 0 or fp[j] == fp_target:
            tp_at, fp_at, lo = tp[j], fp[j], j
        else:  # fp[j-1] > fp_target > fp[j]: on the segment between the two thresholds
            lo = j - 1
            w = (fp_target - fp[j]) / (fp[lo] - fp[j])
            tp_at, fp_at = tp[j] + w * (tp[lo] - tp[j]), fp_target
        precision = float(tp_at / (tp_at + fp_at)) if tp_at + fp_at > 0 else None
        return OperatingPoint(float(target), float(tp_at / self.positives), precision,
                              (t[lo], t[j]))

    def at_threshold(self, threshold: float) -> OperatingPoint:
        """The point of grid threshold ``threshold`` (which must be on the grid)."""
        i = int(np.searchsorted(self.thresholds, threshold))
        if i >= len(self.thresholds) or not np.isclose(self.thresholds[i], threshold, rtol=0,
                                                        atol=1e-12):
            raise ValueError(f"threshold {threshold} is not on the sweep's grid")
        fpr = float(self.fpr[i]) if self.negatives else float("nan")
        tp, fp = int(self.tp[i]), int(self.fp[i])
        return OperatingPoint(fpr, tp / self.positives if self.positives else None,
                              tp / (tp + fp) if tp + fp else None,
                              (float(threshold), float(threshold)), self.undefined())


@dataclass
class ThresholdSweep:
    """Per-region histograms of the probabilities of positive and negative pixels.

    ``regions`` are ``"full"`` and ``"k<k>"`` for every ``k`` of ``ks`` (nested: region
    ``k`` is ``rmap >= k`` of a :func:`~pytest_crbench.science.regions.region_map`).
    """

    ks: tuple[int, ...]
    positives: dict[str, np.ndarray] = field(default_factory=dict)
    negatives: dict[str, np.ndarray] = field(default_factory=dict)
    thresholds: np.ndarray = field(default_factory=lambda: THRESHOLDS)

    def __post_init__(self) -> None:
        self.ks = tuple(sorted(int(k) for k in self.ks))
        n = len(self.thresholds)
        for r in self.regions:
            self.positives.setdefault(r, np.zeros(n, np.int64))
            self.negatives.setdefault(r, np.zeros(n, np.int64))

    @property
    def regions(self) -> list[str]:
        return ["full"] + [region_name(k) for k in self.ks]

    def add(self, probability: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None,
            rmap: np.ndarray) -> None:
        """Add one exposure: its probability map, reference mask, ignore mask and
        :func:`~pytest_crbench.science.regions.region_map`.  Nothing is kept but counts."""
        prob, truth, rmap = np.asarray(probability), np.asarray(truth), np.asarray(rmap)
        ignore = None if ignore is None else np.asarray(ignore)
        if prob.shape != np.shape(truth) or prob.shape != np.shape(rmap):
            raise ValueError(f"probability {prob.shape}, reference {np.shape(truth)} and "
                             f"region map {np.shape(rmap)} differ in shape")
        nb, nl = len(self.thresholds), len(self.ks) + 1
        counts = np.zeros(nl * 2 * nb, np.int64)
        for s in row_strips(prob.shape[0]):  # the int64 temporaries of one strip
            valid = (~np.asarray(ignore[s], bool) if ignore is not None
                     else np.ones(prob[s].shape, bool))
            p = np.nan_to_num(prob[s][valid].astype(np.float64, copy=False), nan=0.0)
            bins = np.clip(np.searchsorted(self.thresholds, p, side="right") - 1, 0, nb - 1)
            # level: 0 outside every region, j+1 inside region ks[j] but not ks[j+1]
            level = region_levels(rmap[s][valid], self.ks)
            is_cr = np.asarray(truth[s], bool)[valid]
            index = (level.astype(np.int64) * 2 + is_cr) * nb + bins
            counts += np.bincount(index, minlength=nl * 2 * nb)
        counts = counts.reshape(nl, 2, nb)
        # region k_j = levels >= j+1: a cumulative sum from the innermost level outwards
        nested = np.cumsum(counts[::-1], axis=0)[::-1]
        for j, region in enumerate(self.regions):
            self.negatives[region] += nested[j, 0]
            self.positives[region] += nested[j, 1]

    def __add__(self, other: "ThresholdSweep") -> "ThresholdSweep":
        if self.ks != other.ks or not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("sweeps over different regions or threshold grids do not add")
        return ThresholdSweep(self.ks,
                              {r: self.positives[r] + other.positives[r] for r in self.regions},
                              {r: self.negatives[r] + other.negatives[r] for r in self.regions},
                              self.thresholds)

    def curve(self, region: str = "full") -> Curve:
        pos, neg = self.positives[region], self.negatives[region]
        tp = np.cumsum(pos[::-1])[::-1]
        fp = np.cumsum(neg[::-1])[::-1]
        return Curve(self.thresholds, tp, fp, int(tp[0]), int(fp[0]))

    def summary(self, region: str = "full") -> dict:
        """AUC, AP and the points at :data:`FIXED_FPRS` of one region (JSON-able)."""
        c = self.curve(region)
        return {"auc": c.auc(), "average_precision": c.average_precision(),
                "positives": c.positives, "negatives": c.negatives,
                "undefined": c.undefined(),
                "at_fpr": {f"{f:g}": c.at_fpr(f).as_dict() for f in FIXED_FPRS}}

    # -- JSON ------------------------------------------------------------------------
    def to_record(self) -> dict:
        """Sparse histograms (non-zero bins only) plus every region's summary."""
        def sparse(h: np.ndarray) -> dict:
            nz = np.nonzero(h)[0]
            return {"bins": nz.tolist(), "counts": h[nz].tolist()}

        return {"grid": {"size": len(self.thresholds), "rule": "probability >= threshold",
                         "definition": "pytest_crbench.science.sweeps.threshold_grid"},
                "ks": list(self.ks),
                "histograms": {r: {"positive": sparse(self.positives[r]),
                                   "negative": sparse(self.negatives[r])}
                               for r in self.regions},
                "summary": {r: self.summary(r) for r in self.regions}}

    @classmethod
    def from_record(cls, record: dict) -> "ThresholdSweep":
        if record["grid"]["size"] != len(THRESHOLDS):
            raise ValueError(f"sweep made on a grid of {record['grid']['size']} thresholds; "
                             f"this version uses {len(THRESHOLDS)}")
        n = len(THRESHOLDS)

        def dense(s: dict) -> np.ndarray:
            h = np.zeros(n, np.int64)
            h[np.asarray(s["bins"], int)] = np.asarray(s["counts"], np.int64)
            return h

        hist = record["histograms"]
        return cls(tuple(record["ks"]), {r: dense(h["positive"]) for r, h in hist.items()},
                   {r: dense(h["negative"]) for r, h in hist.items()})


def operating_fpr(sweep: ThresholdSweep, threshold: float, region: str = "full") -> float:
    """The false-positive rate of ``sweep``'s detector at its grid ``threshold``."""
    return sweep.curve(region).at_threshold(threshold).fpr


def at_baseline_fpr(candidate: ThresholdSweep, baseline: ThresholdSweep | float,
                    baseline_threshold: float = 0.5, region: str = "full") -> OperatingPoint:
    """The candidate's TPR and precision at the baseline's operating false-positive rate.

    ``baseline`` is the baseline's sweep (its FPR is read at ``baseline_threshold``) or
    the FPR itself (for a binary baseline: FP / negatives of its pooled counts; the
    negatives are the same for every detector on the same data and reference).
    """
    fpr = (baseline if isinstance(baseline, (int, float))
           else operating_fpr(baseline, baseline_threshold, region))
    return candidate.curve(region).at_fpr(float(fpr))
