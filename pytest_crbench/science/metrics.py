"""Pixel scores of a cosmic-ray mask against a reference mask (method.md section 3).

Ignored pixels (bad pixels, saturation boxes) are *excluded*: they count neither as
positives nor as negatives.  A score with a zero denominator is :data:`None` together
with the reason, never silently 0 or 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from pytest_crbench._util import STRIP_ROWS, row_strips

METRICS = ("precision", "recall", "f1", "f2")


@dataclass(frozen=True)
class Counts:
    """True positives, false positives and false negatives over a set of pixels."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def confusion(pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None,
              region: np.ndarray | None = None) -> Counts:
    """TP/FP/FN of boolean ``pred`` against ``truth`` inside ``region``, minus ``ignore``."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {truth.shape}")
    valid = np.ones(pred.shape, bool) if region is None else np.asarray(region, bool).copy()
    if ignore is not None:
        valid &= ~np.asarray(ignore, dtype=bool)
    p, t = pred & valid, truth & valid
    tp = int(np.count_nonzero(p & t))
    return Counts(tp=tp, fp=int(np.count_nonzero(p)) - tp, fn=int(np.count_nonzero(t)) - tp)


def nested_histograms(rmap: np.ndarray, ks, codes, n_codes: int,
                      ignore: Sequence[np.ndarray | None] = (), *,
                      strip_rows: int = STRIP_ROWS) -> np.ndarray:
    """Per nested region, how many pixels take each code: an ``(len(ks) + 1, n_codes)``
    int64 array whose row 0 is the whole image and row ``j + 1`` the region ``rmap >=
    ks[j]`` (ks ascending), leaving out the pixels of any ``ignore`` mask.

    ``codes(rows)`` gives the integer code (0 … n_codes - 1) of the pixels of a slice
    of rows.  One ``np.bincount`` per strip of rows, so only one strip's temporaries
    exist (a CSST chip's region masks would be 85 MB each)."""
    ks = np.asarray(sorted(ks))
    n_levels = len(ks) + 1
    counts = np.zeros(n_levels * n_codes, np.int64)
    for rows in row_strips(rmap.shape[0], strip_rows):
        valid = np.ones(rmap[rows].shape, bool)
        for mask in ignore:
            if mask is not None:
                valid &= ~np.asarray(mask[rows], bool)
        # level: 0 outside every region, j + 1 inside region ks[j] but not ks[j + 1]
        level = np.searchsorted(ks, rmap[rows][valid], side="right")
        code = np.asarray(codes(rows))[valid]
        counts += np.bincount(level * n_codes + code, minlength=n_levels * n_codes)
    # region ks[j] holds the levels >= j + 1: cumulative sums from the innermost level
    return np.cumsum(counts.reshape(n_levels, n_codes)[::-1], axis=0)[::-1]


def region_confusion(pred: np.ndarray, truth: np.ndarray, rmap: np.ndarray, ks,
                     ignore: Sequence[np.ndarray | None] = ()) -> list[Counts]:
    """:func:`confusion` of ``pred`` against ``truth`` in every nested region of a
    region map, ``[whole image, rmap >= k for k in sorted(ks)]``, in one pass (see
    :func:`nested_histograms`); pixels of any ``ignore`` mask are left out."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape or pred.shape != np.shape(rmap):
        raise ValueError(f"prediction {pred.shape}, reference {truth.shape} and region map "
                         f"{np.shape(rmap)} differ in shape")
    hist = nested_histograms(np.asarray(rmap), ks,
                             lambda rows: pred[rows].view(np.uint8) * 2 + truth[rows], 4,
                             ignore)
    return [Counts(tp=int(h[3]), fp=int(h[2]), fn=int(h[1])) for h in hist]


@dataclass(frozen=True)
class Score:
    """A score value, or ``None`` with the reason it is undefined."""

    value: float | None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None


def precision(c: Counts) -> Score:
    if c.tp + c.fp == 0:
        return Score(None, "no predicted cosmic-ray pixels (TP+FP=0)")
    return Score(c.tp / (c.tp + c.fp))


def recall(c: Counts) -> Score:
    if c.tp + c.fn == 0:
        return Score(None, "no reference cosmic-ray pixels (TP+FN=0)")
    return Score(c.tp / (c.tp + c.fn))


def fbeta(c: Counts, beta: float) -> Score:
    """F-beta from counts: (1+b²)TP / ((1+b²)TP + b²FN + FP); undefined when all are 0."""
    b2 = beta * beta
    denom = (1 + b2) * c.tp + b2 * c.fn + c.fp
    if denom == 0:
        return Score(None, "no predicted and no reference cosmic-ray pixels")
    return Score((1 + b2) * c.tp / denom)


def scores(c: Counts) -> dict[str, Score]:
    """Precision, recall, F1 and F2 of ``c``, keyed by :data:`METRICS`."""
    return ScoreSet.of(c).as_dict()


@dataclass(frozen=True)
class ScoreSet:
    """The four scores of one set of counts, kept together with the counts."""

    counts: Counts
    precision: Score
    recall: Score
    f1: Score
    f2: Score

    @classmethod
    def of(cls, c: Counts) -> "ScoreSet":
        return cls(c, precision(c), recall(c), fbeta(c, 1.0), fbeta(c, 2.0))

    def metric(self, name: str) -> Score:
        """The score named ``name`` (one of :data:`METRICS`)."""
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, Score]:
        return {m: getattr(self, m) for m in METRICS}

    def to_record(self) -> dict:
        """Counts, score values and, where some score is undefined, ``undefined``:
        ``{metric: reason}``."""
        row: dict = {**self.counts.as_dict(), **{m: s.value for m, s in self.as_dict().items()}}
        undefined = {m: s.reason for m, s in self.as_dict().items() if s.value is None}
        if undefined:
            row["undefined"] = undefined
        return row


def score(pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None,
          region: np.ndarray | None = None) -> ScoreSet:
    """The four scores (with their counts) of mask ``pred`` against ``truth`` inside
    ``region``, ignored pixels excluded: ``ScoreSet.of(confusion(...))``."""
    return ScoreSet.of(confusion(pred, truth, ignore, region))


__all__ = ["METRICS", "Counts", "confusion", "Score", "ScoreSet", "precision", "recall",
           "fbeta", "scores", "score", "nested_histograms", "region_confusion"]
