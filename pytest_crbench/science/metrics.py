"""Pixel scores of a cosmic-ray mask against a reference mask (method.md section 3).

Ignored pixels (bad pixels, saturation boxes) are *excluded*: they count neither as
positives nor as negatives.  A score with a zero denominator is :data:`None` together
with the reason, never silently 0 or 1.

:func:`confusion` counts one region given as a mask; :func:`region_tables` counts the
whole image and every nested star region of a region map in one pass over the pixels
(:class:`MaskTable`: the pixels of every combination of several masks), from which the
counts of any pair of those masks follow (:meth:`MaskTable.confusion`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import numpy as np

from pytest_crbench._util import row_strips
from pytest_crbench.science.regions import region_levels, region_names

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


#: Rows of the images :func:`region_tables` reads at a time: its temporaries are a few
#: bytes per pixel of one strip (fastest near a million pixels per strip).
TABLE_ROWS = 256


def _bits(i: int | tuple[int, ...], n: int) -> np.ndarray:
    """Which of the ``n`` codes of a :class:`MaskTable` have mask ``i`` (or any mask of
    the tuple ``i``) set."""
    codes = np.arange(n)
    return np.logical_or.reduce([(codes >> j) & 1 == 1 for j in np.atleast_1d(i)])


@dataclass(frozen=True, eq=False)
class MaskTable:
    """How many pixels of a set carry each combination of ``n`` boolean masks:
    ``counts[c]`` pixels have mask ``i`` set exactly for the bits ``i`` set in ``c``.

    A mask argument of the methods is the index of one mask or a tuple of indices (the
    union of those masks)."""

    counts: np.ndarray

    def count(self, i: int | tuple[int, ...] | None = None) -> int:
        """The pixels with mask ``i`` set (``None``: every pixel of the set)."""
        if i is None:
            return int(self.counts.sum())
        return int(self.counts[_bits(i, self.counts.size)].sum())

    def confusion(self, pred, truth, leave_out=None) -> Counts:
        """TP/FP/FN of mask ``pred`` against mask ``truth``, the pixels of mask
        ``leave_out`` (if any) left out: :func:`confusion` of those masks on this set."""
        n = self.counts.size
        keep = ~_bits(leave_out, n) if leave_out is not None else np.ones(n, bool)
        p, t = _bits(pred, n) & keep, _bits(truth, n) & keep
        return Counts(tp=int(self.counts[p & t].sum()), fp=int(self.counts[p & ~t].sum()),
                      fn=int(self.counts[~p & t].sum()))


def _strip_codes(masks: list[np.ndarray], ignore: np.ndarray | None, rmap: np.ndarray | None,
                 ks: tuple, rows: slice, dtype, ignored: int) -> np.ndarray:
    """Per pixel of ``rows``: region level × 2**n + the bits of the ``n`` masks, or
    ``ignored`` where ``ignore`` is set."""
    if rmap is None:
        code = np.zeros(masks[0][rows].shape, dtype)
    else:
        code = region_levels(rmap[rows], ks).astype(dtype, copy=False)
        np.left_shift(code, len(masks), out=code)
    for i, mask in enumerate(masks):
        bits = mask[rows]
        bits = (bits if bits.dtype == bool else np.asarray(bits, bool)).view(np.uint8)
        code |= np.left_shift(bits, i, dtype=dtype) if i else bits
    if ignore is not None:
        np.copyto(code, ignored, where=np.asarray(ignore[rows], bool))
    return code


def region_tables(masks, ignore: np.ndarray | None, rmap: np.ndarray | None = None, ks=(),
                  *, strip_rows: int = TABLE_ROWS) -> dict[str, MaskTable]:
    """The :class:`MaskTable` of boolean ``masks`` over the non-ignored pixels of the
    whole image (``"full"``) and of every star region ``k`` of ``ks`` (``rmap >= k``),
    keyed as :func:`~pytest_crbench.science.regions.region_names`.

    One pass in strips of rows: one ``np.bincount`` of (region level, mask bits) per
    strip, then sums from the innermost level outwards (the regions are nested); no
    full-frame temporary (a CSST chip's region masks would be 85 MB each).  ``rmap``
    None: the whole image only (``ks`` empty).
    """
    masks = [np.asarray(m) for m in masks]
    ks = tuple(sorted(ks))
    if rmap is None and ks:
        raise ValueError("region thresholds without a region map")
    shapes = {m.shape for m in masks} | {np.shape(a) for a in (ignore, rmap) if a is not None}
    if not masks or len(shapes) != 1 or not masks[0].ndim:
        raise ValueError(f"expected masks, ignore mask and region map of one shape (at least "
                         f"1-D), got {sorted(shapes)}")
    width, levels = 1 << len(masks), len(ks) + 1
    ignored = width * levels  # one bin past the counted ones
    dtype = next(t for t in (np.uint8, np.uint16, np.int64) if ignored <= np.iinfo(t).max)
    counts = np.zeros(ignored + 1, np.int64)
    for rows in row_strips(masks[0].shape[0], strip_rows):
        code = _strip_codes(masks, ignore, rmap, ks, rows, dtype, ignored)
        counts += np.bincount(code.ravel(), minlength=ignored + 1)
    nested = np.cumsum(counts[:-1].reshape(levels, width)[::-1], axis=0)[::-1]
    return {name: MaskTable(nested[j]) for j, name in enumerate(region_names(ks))}


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


__all__ = ["METRICS", "Counts", "confusion", "TABLE_ROWS", "MaskTable", "region_tables",
           "Score", "ScoreSet", "precision", "recall", "fbeta", "scores", "score"]
