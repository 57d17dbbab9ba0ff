"""Paired comparison of a candidate detector with a baseline on the same exposures.

Both detectors' :class:`~pytest_crbench.bench.intervals.Sample` are aligned on their
(group, exposure) keys and resampled with **one** weight matrix, so every replicate
compares the two detectors on the same draw of exposures:

* **pixels** — per region and metric, Δ = candidate − baseline with its paired
  percentile interval;
* **photometry** — per size bin, Δ of the anomalous / inside-[0.97, 1.03] /
  outside-[0.9, 1.1] fractions over contaminated stars;
* **stability** — Δ of the mean over groups of F1, F2 and the trimmed ratio RMS;
* **stars** — per size bin, the contaminated stars matched by (group, exposure, star id):
  anomalous status compared with an exact McNemar test on the discordant pairs, and
  Δ of the mean |F_cleaned/F_clean − 1| with its paired interval.

A verdict is ``better`` / ``worse`` where the interval of Δ excludes 0 (for a McNemar
row: where p < 1 − confidence), else ``no significant difference``.  The
**non-inferiority** rule (:func:`non_inferior`) fails a row where the whole interval of
the signed change lies below −``max_drop`` — the gate of ``--crbench-baseline`` and the
exit code of ``crbench compare``.  A detector compared with itself gives Δ = 0 in every
replicate, so every row passes.

:func:`check_comparable` refuses two result files that were not made on the same data,
reference settings and k list, naming the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_crbench.bench.intervals import (PHOTOMETRY_FIELDS, STABILITY_FIELDS, MIN_INTERVAL_COUNT,
                                            Sample, photometry_terms, pixel_count, size_bins,
                                            star_arrays)
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.bootstrap import (BootstrapConfig, Interval, Resampler, mcnemar,
                                              metric_terms, verdict)
from pytest_crbench.science.metrics import METRICS

DEFAULT_MAX_DROP = 0.02


@dataclass(frozen=True)
class Difference:
    """Δ = candidate − baseline of one pooled score."""

    candidate: str
    baseline: str
    dataset: str
    kind: str  # pixels | photometry | stability | stars
    part: str  # region, size bin or "groups"
    metric: str
    candidate_value: float | None
    baseline_value: float | None
    delta: Interval
    higher_is_better: bool = True
    verdict: str = "undefined"
    # McNemar rows (kind "stars", metric "anomalous")
    pairs: int | None = None
    baseline_only: int | None = None
    candidate_only: int | None = None
    p_value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {"candidate": self.candidate, "baseline": self.baseline, "dataset": self.dataset,
             "kind": self.kind, "part": self.part, "metric": self.metric,
             "candidate_value": self.candidate_value, "baseline_value": self.baseline_value,
             "delta": self.delta.as_dict(), "higher_is_better": self.higher_is_better,
             "verdict": self.verdict}
        if self.p_value is not None:
            d.update(pairs=self.pairs, baseline_only=self.baseline_only,
                     candidate_only=self.candidate_only, p_value=self.p_value)
        return d

    def drop(self) -> tuple[float, float] | None:
        """The interval of the signed change (positive = improvement), or None."""
        if not self.delta.defined:
            return None
        lo, hi = self.delta.low, self.delta.high
        return (lo, hi) if self.higher_is_better else (-hi, -lo)

    def non_inferior(self, max_drop: float) -> bool:
        """False where the whole interval of the change lies below −``max_drop``."""
        iv = self.drop()
        return iv is None or iv[1] >= -max_drop

    @property
    def label(self) -> str:
        return f"{self.dataset} {self.kind} {self.part} {self.metric}"


def _diff(cand: Sample, base: Sample, kind: str, part: str, metric: str, a: Interval,
          b: Interval, delta: Interval, higher: bool) -> Difference:
    return Difference(cand.detector, base.detector, cand.dataset, kind, part, metric,
                      a.value, b.value, delta, higher, verdict(delta, higher))


def compare_samples(cand: Sample, base: Sample, config: BootstrapConfig = BootstrapConfig(),
                    *, min_count: float = MIN_INTERVAL_COUNT) -> list[Difference]:
    """Every paired difference of ``cand`` against ``base`` (see the module docstring)."""
    if cand.dataset != base.dataset:
        raise CRBenchConfigError(f"cannot compare {cand.detector} on {cand.dataset} with "
                                 f"{base.detector} on {base.dataset}: different datasets")
    if set(cand.keys) != set(base.keys):
        only_c = sorted(set(cand.keys) - set(base.keys))[:3]
        only_b = sorted(set(base.keys) - set(cand.keys))[:3]
        raise CRBenchConfigError(
            f"{cand.detector} and {base.detector} on {cand.dataset} were not scored on the "
            f"same exposures (only in the candidate: {only_c}; only in the baseline: "
            f"{only_b})")
    cand = cand.aligned(base.keys)
    rs = Resampler(base.groups, config)
    out: list[Difference] = []
    for region in [r for r in base.regions if r in cand.regions]:
        cc, bc = cand.counts[region], base.counts[region]
        for metric in METRICS:
            n = min(pixel_count(metric, cc)[0], pixel_count(metric, bc)[0])
            what = pixel_count(metric, bc)[1]
            kw = dict(min_count=min_count, what=what, count=n)
            ct = metric_terms(metric, *cc.T)
            bt = metric_terms(metric, *bc.T)
            out.append(_diff(cand, base, "pixels", region, metric, rs.ratio(*ct, **kw),
                             rs.ratio(*bt, **kw), rs.ratio_difference(ct, bt, **kw), True))
    if cand.stars and base.stars:
        out += _photometry(cand, base, rs, min_count)
        out += _stars(cand, base, rs, min_count)
    if cand.stability and base.stability:
        for q, higher in STABILITY_FIELDS.items():
            cv = [cand.stability.get(g, {}).get(q, np.nan) for g in rs.group_labels]
            bv = [base.stability.get(g, {}).get(q, np.nan) for g in rs.group_labels]
            out.append(_diff(cand, base, "stability", "groups", q, rs.group_mean(cv),
                             rs.group_mean(bv), rs.group_mean_difference(cv, bv), higher))
    return out


def _photometry(cand: Sample, base: Sample, rs: Resampler, min_count: float
                ) -> list[Difference]:
    out = []
    n = len(base.keys)
    ccols, bcols = star_arrays(cand.stars, base.keys), star_arrays(base.stars, base.keys)
    for size_bin in size_bins(base.stars):
        ct, bt = photometry_terms(ccols, n, size_bin), photometry_terms(bcols, n, size_bin)
        count = float(min(ct["anomalous"][1].sum(), bt["anomalous"][1].sum()))
        kw = dict(min_count=min_count, what="contaminated stars", count=count)
        for fld, (higher, _) in PHOTOMETRY_FIELDS.items():
            out.append(_diff(cand, base, "photometry", size_bin, fld,
                             rs.ratio(*ct[fld], **kw), rs.ratio(*bt[fld], **kw),
                             rs.ratio_difference(ct[fld], bt[fld], **kw), higher))
    return out


def matched_stars(cand: Sample, base: Sample) -> dict[str, np.ndarray]:
    """Star images present in both samples, matched by (group, exposure, star id)."""
    def table(stars):
        return {(s["group"], s["exposure"], int(s["star_id"])): s for s in stars}

    ct, bt = table(cand.stars), table(base.stars)
    keys = [k for k in bt if k in ct]
    index = {k: i for i, k in enumerate(base.keys)}

    def ratio(s):
        return np.nan if s.get("ratio_cleaned") is None else float(s["ratio_cleaned"])

    return {
        "key": keys,
        "index": np.array([index.get(k[:2], -1) for k in keys], dtype=np.intp),
        "size_bin": np.array([str(bt[k].get("size_bin", "")) for k in keys], dtype=object),
        "contaminated": np.array([bool(bt[k]["contaminated"]) for k in keys], dtype=bool),
        "base_anomalous": np.array([bool(bt[k]["anomalous"]) for k in keys], dtype=bool),
        "cand_anomalous": np.array([bool(ct[k]["anomalous"]) for k in keys], dtype=bool),
        "base_ratio": np.array([ratio(bt[k]) for k in keys], dtype=float),
        "cand_ratio": np.array([ratio(ct[k]) for k in keys], dtype=float),
    }


def _stars(cand: Sample, base: Sample, rs: Resampler, min_count: float) -> list[Difference]:
    from pytest_crbench.bench.intervals import per_exposure

    m = matched_stars(cand, base)
    n = len(base.keys)
    alpha = 1.0 - rs.config.confidence
    out = []
    for size_bin in size_bins(base.stars):
        sel = m["contaminated"] & (True if size_bin == "all" else m["size_bin"] == size_bin)
        b_only = int((sel & m["base_anomalous"] & ~m["cand_anomalous"]).sum())
        c_only = int((sel & m["cand_anomalous"] & ~m["base_anomalous"]).sum())
        p = mcnemar(b_only, c_only)
        pairs = int(sel.sum())
        fa = float((sel & m["cand_anomalous"]).sum()) / pairs if pairs else None
        fb = float((sel & m["base_anomalous"]).sum()) / pairs if pairs else None
        if pairs == 0:
            v = "undefined"
        elif p < alpha:
            v = "worse" if c_only > b_only else "better"
        else:
            v = "no significant difference"
        out.append(Difference(
            cand.detector, base.detector, cand.dataset, "stars", size_bin, "anomalous",
            fa, fb, Interval(None if fa is None else fa - fb,
                             reason="exact McNemar test on the discordant pairs"),
            False, v, pairs, b_only, c_only, p))
        both = sel & np.isfinite(m["cand_ratio"]) & np.isfinite(m["base_ratio"])
        den = per_exposure(both, m["index"], n)
        cnum = per_exposure(both, m["index"], n, np.abs(m["cand_ratio"] - 1.0))
        bnum = per_exposure(both, m["index"], n, np.abs(m["base_ratio"] - 1.0))
        kw = dict(min_count=min_count, what="contaminated stars with finite ratios")
        out.append(_diff(cand, base, "stars", size_bin, "abs_ratio_minus_1",
                         rs.ratio(cnum, den, **kw), rs.ratio(bnum, den, **kw),
                         rs.ratio_difference((cnum, den), (bnum, den), **kw), False))
    return out


def regressions(diffs: list[Difference], max_drop: float) -> list[Difference]:
    """Pixel-score and photometric rows that fail the non-inferiority rule."""
    return [d for d in diffs if d.kind in ("pixels", "photometry")
            and not d.non_inferior(max_drop)]


# --------------------------------------------------------------------------- saved files

#: provenance keys that differ between two comparable runs (who ran it, where, when)
_RUN_KEYS = {"package", "version", "python", "numpy", "detectors", "path", "created",
             "created_by_pid", "timing"}
#: settings that do not change the data or how it is measured (the detector's threshold
#: is part of what is compared: a candidate may be the same model at another threshold)
_FREE_SETTINGS = {"model", "json", "report", "floors", "generate_floors", "save_masks",
                  "data_dir", "offline", "device", "baseline", "max_drop",
                  "bootstrap_replicates", "bootstrap_seed", "confidence",
                  "floors_confidence", "floors_min_positives", "floors_min_stars",
                  "dataset", "threshold", "anomalous_level"}


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def check_comparable(base: dict, cand: dict, *, base_name: str = "baseline",
                     cand_name: str = "candidate", datasets: list[str] | None = None) -> None:
    """Raise CRBenchConfigError naming every provenance difference that makes two result
    files incomparable: the datasets (version, seed, file hashes …), the reference and
    measurement settings (k list, fill method, threshold …) and every other provenance
    section the files carry, except who/where/when ran them and which detectors."""
    pb, pc = base.get("provenance") or {}, cand.get("provenance") or {}
    diffs = []
    for section in sorted(set(pb) | set(pc)):
        if section in _RUN_KEYS:
            continue
        a, b = pb.get(section), pc.get(section)
        if section == "datasets" and datasets is not None:
            a = {k: v for k, v in (a or {}).items() if k in datasets}
            b = {k: v for k, v in (b or {}).items() if k in datasets}
        fa, fb = _flatten(a, section), _flatten(b, section)
        for key in sorted(set(fa) | set(fb)):
            leaf = key.split(".")[-1]
            if leaf in _RUN_KEYS or (section == "settings" and leaf in _FREE_SETTINGS):
                continue
            if fa.get(key) != fb.get(key):
                diffs.append(f"{key}: {base_name} {fa.get(key, '(absent)')!r} vs "
                             f"{cand_name} {fb.get(key, '(absent)')!r}")
    if diffs:
        shown = diffs[:8] + ([f"... and {len(diffs) - 8} more"] if len(diffs) > 8 else [])
        raise CRBenchConfigError(
            f"{base_name} and {cand_name} were not made on the same data and settings; "
            "refusing to compare them:\n  " + "\n  ".join(shown))


__all__ = ["Difference", "compare_samples", "matched_stars", "regressions",
           "check_comparable", "DEFAULT_MAX_DROP"]
