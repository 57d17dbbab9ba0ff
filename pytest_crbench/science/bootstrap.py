"""Hierarchical bootstrap intervals for pooled scores, and paired differences.

Every score pytest-crbench reports is a **ratio of pooled sums** over exposures:
precision = ΣTP / Σ(TP+FP), recall = ΣTP / Σ(TP+FN), F-beta = Σ(1+b²)TP / Σ((1+b²)TP +
b²FN + FP), a photometric fraction = Σ(stars with the property) / Σ(contaminated stars),
a mean |ratio − 1| = Σ|ratio − 1| / Σ(stars).  The pixels of one exposure are not
independent (one cosmic ray covers several, one star holds many), and the exposures of
one group share their reference (the median of the group).  The unit of resampling is
therefore the **group**, then the **exposure within the group** (the two-stage bootstrap
of Davison & Hinkley 1997, §3.8, which errs on the wide side): a replicate draws G groups
with replacement out of G and, for each drawn group, n_g of its exposures with
replacement.  A replicate is a vector of non-negative integer weights, one per exposure;
the replicate's score is the ratio of the weighted sums.  All replicates at once are one
matrix product: ``weights (R × E) @ numerator (E,)``.

Group-level statistics (the stability means of method.md §6: mean F1, F2 and trimmed
flux-ratio RMS over groups) are resampled with the first-stage group weights alone.

A **paired** difference (candidate − baseline on the same exposures) applies the *same*
weight matrix to both detectors' sums, so identical inputs give a difference of exactly
0 in every replicate.

Intervals are percentile intervals; a one-sided lower bound at confidence c is the
(1 − c) quantile (an upper bound the c quantile).  A score has no interval — ``low`` and
``high`` are None and ``reason`` says why — where its pooled denominator holds fewer
than ``min_count`` units (pixels or stars), where there are fewer than
:data:`MIN_GROUPS` groups, or where the score is undefined in more than the tail mass
``(1 − confidence) / 2`` of the replicates (the quantiles would then be meaningless).

Plain numpy; no pytest, no astropy.  Deterministic: all randomness comes from
``numpy.random.default_rng(seed)``, and the weights depend only on the seed and the
group structure — never on the detector — so every detector of a run is resampled with
the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

#: groups needed before the group-level resampling means anything
MIN_GROUPS = 2

UNIT = "groups, then exposures within each drawn group (two-stage bootstrap)"
GROUP_UNIT = "groups"


@dataclass(frozen=True)
class BootstrapConfig:
    """Number of replicates, seed and (two-sided) confidence level of the intervals."""

    replicates: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if int(self.replicates) < 10:
            raise ValueError(f"bootstrap replicates must be >= 10, got {self.replicates}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got "
                             f"{self.confidence}")

    def as_dict(self) -> dict:
        return {"replicates": int(self.replicates), "seed": int(self.seed),
                "confidence": float(self.confidence)}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile interval; ``low``/``high`` None = undefined."""

    value: float | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def as_dict(self) -> dict:
        return {"value": self.value,
                "interval": [self.low, self.high] if self.defined else None,
                **({"reason": self.reason} if self.reason else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "Interval":
        lo, hi = d.get("interval") or (None, None)
        return cls(d.get("value"), lo, hi, d.get("reason"))

    def __format__(self, spec: str) -> str:
        """``f"{iv:pct}"`` → ``90.9 [89.2, 92.4]`` (percent); ``f"{iv}"`` the same in units."""
        scale = 100.0 if spec == "pct" else 1.0
        digits = 1 if spec == "pct" else 4
        if self.value is None:
            return "undef."
        text = f"{scale * self.value:.{digits}f}"
        if self.defined:
            text += f" [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"
        return text


class Resampler:
    """The replicate weights of one group structure (exposures labelled by their group).

    ``groups[i]`` is the group of exposure ``i``.  :attr:`exposure_weights` is (R × E),
    :attr:`group_weights` (R × G) in the order of :attr:`group_labels` (first appearance).
    """

    def __init__(self, groups: Sequence[Hashable], config: BootstrapConfig = BootstrapConfig()):
        self.config = config
        self.groups = list(groups)
        labels: list = []
        index: dict = {}
        for g in self.groups:
            if g not in index:
                index[g] = len(labels)
                labels.append(g)
        self.group_labels = labels
        self.group_index = np.array([index[g] for g in self.groups], dtype=np.intp)
        R, G, E = int(config.replicates), len(labels), len(self.groups)
        rng = np.random.default_rng(int(config.seed))
        if G == 0:
            self.group_weights = np.zeros((R, 0))
            self.exposure_weights = np.zeros((R, 0))
            return
        draws = rng.integers(0, G, size=(R, G))
        flat = (draws + np.arange(R)[:, None] * G).ravel()
        gw = np.bincount(flat, minlength=R * G).reshape(R, G)
        ew = np.zeros((R, E), dtype=np.int64)
        for g in range(G):
            members = np.flatnonzero(self.group_index == g)
            n = len(members)
            # each time group g is drawn, n of its exposures are drawn with replacement
            ew[:, members] = rng.multinomial(gw[:, g] * n, np.full(n, 1.0 / n))
        self.group_weights = gw.astype(float)
        self.exposure_weights = ew.astype(float)

    @property
    def n_groups(self) -> int:
        return len(self.group_labels)

    def too_few_groups(self) -> str | None:
        if self.n_groups < MIN_GROUPS:
            return (f"{self.n_groups} group(s): the bootstrap needs at least {MIN_GROUPS} "
                    "groups to resample")
        return None

    # -- replicates ------------------------------------------------------------------
    def ratio_replicates(self, num, den) -> np.ndarray:
        """Σ w·num / Σ w·den per replicate (NaN where the weighted denominator is 0)."""
        num = np.asarray(num, dtype=float)
        den = np.asarray(den, dtype=float)
        self._check(num)
        self._check(den)
        top = self.exposure_weights @ num
        bottom = self.exposure_weights @ den
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)

    def group_mean_replicates(self, values) -> np.ndarray:
        """Mean over groups of per-group ``values`` (NaN = undefined group, left out)."""
        v = np.asarray(values, dtype=float)
        if v.shape != (self.n_groups,):
            raise ValueError(f"expected {self.n_groups} group values, got shape {v.shape}")
        ok = np.isfinite(v)
        w = self.group_weights * ok
        tot = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, (w @ np.where(ok, v, 0.0)) / np.where(tot > 0, tot, 1),
                            np.nan)

    def _check(self, a: np.ndarray) -> None:
        if a.shape != (len(self.groups),):
            raise ValueError(f"expected one value per exposure ({len(self.groups)}), got "
                             f"shape {a.shape}")

    # -- intervals -------------------------------------------------------------------
    def ratio(self, num, den, *, min_count: float = 1, count: float | None = None,
              what: str = "units") -> Interval:
        """Pooled ratio Σnum/Σden with its interval.

        ``count`` (default Σden) is what ``min_count`` applies to, and ``what`` names it
        in the reason ("reference CR pixels", "contaminated stars").
        """
        num = np.asarray(num, dtype=float)
        den = np.asarray(den, dtype=float)
        total = float(den.sum())
        value = float(num.sum()) / total if total > 0 else None
        if value is None:
            return Interval(None, reason=f"no {what}")
        n = total if count is None else float(count)
        if n < min_count:
            return Interval(value, reason=f"only {n:g} {what} (fewer than {min_count:g})")
        why = self.too_few_groups()
        if why:
            return Interval(value, reason=why)
        return self.interval(value, self.ratio_replicates(num, den))

    def ratio_difference(self, cand: tuple, base: tuple, **kwargs) -> Interval:
        """Paired Δ = cand − base of two pooled ratios, ``cand``/``base`` = (num, den)."""
        a = self.ratio(*cand, **kwargs)
        b = self.ratio(*base, **kwargs)
        if a.value is None or b.value is None:
            return Interval(None, reason=a.reason if a.value is None else b.reason)
        value = a.value - b.value
        if not (a.defined and b.defined):
            return Interval(value, reason=a.reason or b.reason)
        reps = self.ratio_replicates(*cand) - self.ratio_replicates(*base)
        return self.interval(value, reps)

    def group_mean(self, values, *, min_groups: int = MIN_GROUPS) -> Interval:
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        if not ok.any():
            return Interval(None, reason="no group has a value")
        value = float(v[ok].mean())
        if int(ok.sum()) < max(min_groups, MIN_GROUPS):
            return Interval(value, reason=f"only {int(ok.sum())} group(s) with a value")
        return self.interval(value, self.group_mean_replicates(v))

    def group_mean_difference(self, cand, base) -> Interval:
        """Paired Δ of two group means (groups where either value is undefined left out)."""
        c = np.asarray(cand, dtype=float)
        b = np.asarray(base, dtype=float)
        both = np.isfinite(c) & np.isfinite(b)
        c, b = np.where(both, c, np.nan), np.where(both, b, np.nan)
        if not both.any():
            return Interval(None, reason="no group has a value for both detectors")
        value = float(c[both].mean() - b[both].mean())
        if int(both.sum()) < MIN_GROUPS:
            return Interval(value, reason=f"only {int(both.sum())} group(s) with a value")
        return self.interval(value, self.group_mean_replicates(c)
                             - self.group_mean_replicates(b))

    def interval(self, value: float, replicates: np.ndarray) -> Interval:
        """Two-sided percentile interval of ``replicates`` around ``value``."""
        return percentile_interval(value, replicates, self.config.confidence)

    def lower_bound(self, num, den, confidence: float, **kwargs) -> Interval:
        """One-sided confidence bounds of the pooled ratio: ``low`` = (1 − c) quantile of
        the replicates, ``high`` = c quantile."""
        iv = self.ratio(num, den, **kwargs)
        if not iv.defined:
            return iv
        return one_sided_bounds(iv.value, self.ratio_replicates(num, den), confidence)

    def prediction_bounds(self, num, den, confidence: float, **kwargs) -> Interval:
        """One-sided bounds for the score of a **rerun on an independent dataset of the
        same design** (another simulator seed, other groups of the same size): quantiles
        of θ̂ + (θ*ᵢ − θ*ⱼ), j a seeded permutation of the replicates.  Their spread is
        √2 times that of the confidence bounds, because the new dataset's sampling error
        adds to the estimate's own: for a normal score a floor at the 99 % confidence
        bound is crossed by about 5 % of the reruns of an unchanged detector, a floor at
        the 99 % prediction bound by 1 %."""
        iv = self.ratio(num, den, **kwargs)
        if not iv.defined:
            return iv
        reps = self.ratio_replicates(num, den)
        perm = np.random.default_rng([int(self.config.seed), 1]).permutation(len(reps))
        return one_sided_bounds(iv.value, iv.value + reps - reps[perm], confidence)


def percentile_interval(value: float, replicates: np.ndarray, confidence: float) -> Interval:
    reps = np.asarray(replicates, dtype=float)
    tail = (1.0 - confidence) / 2.0
    bad = float(np.mean(~np.isfinite(reps))) if reps.size else 1.0
    if bad > tail:
        return Interval(value, reason=f"score undefined in {100 * bad:.1f} % of the bootstrap "
                                      "replicates (too few positives)")
    lo, hi = np.nanquantile(reps, [tail, 1.0 - tail])
    return Interval(value, float(lo), float(hi))


def one_sided_bounds(value: float, replicates: np.ndarray, confidence: float) -> Interval:
    """``low`` = the one-sided lower bound at ``confidence``, ``high`` the upper bound."""
    reps = np.asarray(replicates, dtype=float)
    bad = float(np.mean(~np.isfinite(reps))) if reps.size else 1.0
    if bad > 1.0 - confidence:
        return Interval(value, reason=f"score undefined in {100 * bad:.1f} % of the bootstrap "
                                      "replicates (too few positives)")
    lo, hi = np.nanquantile(reps, [1.0 - confidence, confidence])
    return Interval(value, float(lo), float(hi))


def verdict(delta: Interval, higher_is_better: bool = True) -> str:
    """``better`` / ``worse`` where the interval of Δ excludes 0, else
    ``no significant difference`` (``undefined`` without an interval)."""
    if not delta.defined:
        return "undefined"
    if delta.low > 0 or delta.high < 0:
        up = delta.low > 0
        return "better" if up == higher_is_better else "worse"
    return "no significant difference"


def mcnemar(base_only: int, cand_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs (binomial test, p = ½).

    ``base_only``: pairs where only the baseline has the (bad) property, ``cand_only``:
    only the candidate.  1.0 without discordant pairs.
    """
    n = int(base_only) + int(cand_only)
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(cand_only), n, 0.5).pvalue)


def fbeta_terms(tp, fp, fn, beta: float):
    """(numerator, denominator) per exposure of F-beta, so that pooled F-beta is a ratio."""
    b2 = beta * beta
    tp = np.asarray(tp, dtype=float)
    return (1 + b2) * tp, (1 + b2) * tp + b2 * np.asarray(fn, float) + np.asarray(fp, float)


def metric_terms(metric: str, tp, fp, fn):
    """(numerator, denominator) per exposure of a pixel metric (metrics.METRICS)."""
    tp = np.asarray(tp, dtype=float)
    fp = np.asarray(fp, dtype=float)
    fn = np.asarray(fn, dtype=float)
    if metric == "precision":
        return tp, tp + fp
    if metric == "recall":
        return tp, tp + fn
    if metric in ("f1", "f2"):
        return fbeta_terms(tp, fp, fn, 1.0 if metric == "f1" else 2.0)
    raise ValueError(f"unknown metric {metric!r}")


__all__ = ["BootstrapConfig", "Interval", "Resampler", "UNIT", "GROUP_UNIT", "MIN_GROUPS",
           "percentile_interval", "one_sided_bounds", "verdict", "mcnemar", "metric_terms",
           "fbeta_terms"]
