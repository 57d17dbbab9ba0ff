"""Figures of the score intervals and of the paired comparison (matplotlib Agg, no pyplot).

* :func:`fig_table1_bands` — Table 1 as a plot: recall and precision against the region
  threshold k, one line per detector, with its bootstrap interval as a band;
* :func:`fig_comparison_deltas` — candidate − baseline per region and metric with the
  paired intervals as error bars (zero line; the −max_drop tolerance dashed);
* :func:`fig_ratio_scatter` — per matched contaminated star, the candidate's flux ratio
  against the baseline's (the diagonal = the same result).

Inputs are the plain dicts of the results JSON (``intervals``, ``comparison``, ``stars``
sections), so the report can be drawn from a saved run.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from pytest_crbench.reporting.figures import grid, new_figure

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#7f7f7f")


def _k(region: str) -> float | None:
    try:
        return float(region[1:]) if region.startswith("k") else None
    except ValueError:
        return None


def fig_table1_bands(intervals: Sequence[Mapping[str, Any]], dataset: str | None = None):
    """Recall and precision (%) against k with bands; the full image as a point at the left."""
    rows = [r for r in intervals if r["kind"] == "pixels"
            and (dataset is None or r["dataset"] == dataset)]
    if not rows:
        return None
    dets = list(dict.fromkeys(r["detector"] for r in rows))
    fig = new_figure(12.5, 4.6)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("recall", "precision")):
        for i, det in enumerate(dets):
            colour = _COLOURS[i % len(_COLOURS)]
            sel = [r for r in rows if r["detector"] == det and r["metric"] == metric]
            ks = [(k, r) for r in sel
                  if (k := _k(r["part"])) is not None and r["value"] is not None]
            ks.sort(key=lambda t: t[0])
            if ks:
                x = np.array([k for k, _ in ks])
                y = np.array([100 * r["value"] for _, r in ks])
                lo = np.array([100 * r["interval"][0] if r["interval"] else np.nan for _, r in ks])
                hi = np.array([100 * r["interval"][1] if r["interval"] else np.nan for _, r in ks])
                ax.plot(x, y, "o-", color=colour, label=det, ms=4)
                ax.fill_between(x, lo, hi, color=colour, alpha=0.18, lw=0)
            full = next((r for r in sel if r["part"] == "full" and r["value"] is not None), None)
            if full is not None:
                err = None
                if full["interval"]:
                    err = [[100 * (full["value"] - full["interval"][0])],
                           [100 * (full["interval"][1] - full["value"])]]
                ax.errorbar([1.5], [100 * full["value"]], yerr=err, fmt="s", color=colour,
                            capsize=3, ms=5)
        ax.set_xscale("log")
        ax.set_xlabel("star region: pixels above k × background RMS (square at left: full image)")
        ax.set_ylabel(f"{metric} %")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.set_title(f"{metric} against k" + (f" on {dataset}" if dataset else ""))
    axes[0].legend(fontsize=8, loc="lower left")
    return fig


def fig_comparison_deltas(differences: Sequence[Mapping[str, Any]], max_drop: float):
    """One panel per (candidate, baseline, dataset): Δ per region, one marker per metric."""
    rows = [d for d in differences if d["kind"] == "pixels"]
    blocks = list(dict.fromkeys((d["candidate"], d["baseline"], d["dataset"]) for d in rows))
    if not blocks:
        return None
    nr, nc = grid(len(blocks), 2)
    fig = new_figure(6.4 * nc, 4.2 * nr)
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False)).ravel()
    metrics = ("recall", "precision", "f1", "f2")
    for ax, (cand, base, ds) in zip(axes, blocks):
        sel = [d for d in rows
               if (d["candidate"], d["baseline"], d["dataset"]) == (cand, base, ds)]
        regions = list(dict.fromkeys(d["part"] for d in sel))
        for j, metric in enumerate(metrics):
            xs, ys, lo, hi = [], [], [], []
            for i, region in enumerate(regions):
                d = next((d for d in sel if d["part"] == region and d["metric"] == metric), None)
                if d is None or d["delta"]["value"] is None:
                    continue
                v = 100 * d["delta"]["value"]
                iv = d["delta"]["interval"]
                xs.append(i + (j - 1.5) * 0.18)
                ys.append(v)
                lo.append(v - 100 * iv[0] if iv else 0.0)
                hi.append(100 * iv[1] - v if iv else 0.0)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=4, capsize=2,
                        color=_COLOURS[j], label=metric)
        ax.axhline(0, color="k", lw=0.7)
        ax.axhline(-100 * max_drop, color="0.4", lw=0.8, ls="--",
                   label=f"-max drop ({100 * max_drop:g} pp)")
        ax.set_xticks(range(len(regions)), regions)
        ax.set_ylabel("candidate − baseline (percentage points)")
        ax.set_title(f"{cand} − {base} on {ds}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(blocks):]:
        ax.set_visible(False)
    return fig


def matched_ratio_pairs(stars: Sequence[Mapping[str, Any]], candidate: str, baseline: str,
                        dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(baseline ratio, candidate ratio, anomalous changed) of the contaminated star images
    present for both detectors, matched by (group, exposure, star id)."""
    def table(det):
        return {(s["group"], s["exposure"], s["star_id"]): s for s in stars
                if s["detector"] == det and s["dataset"] == dataset and s["contaminated"]}

    b, c = table(baseline), table(candidate)
    keys = [k for k in b if k in c]
    f = lambda v: np.nan if v is None else float(v)
    return (np.array([f(b[k]["ratio_cleaned"]) for k in keys]),
            np.array([f(c[k]["ratio_cleaned"]) for k in keys]),
            np.array([bool(b[k]["anomalous"]) != bool(c[k]["anomalous"]) for k in keys]))


def fig_ratio_scatter(stars: Sequence[Mapping[str, Any]],
                      pairs: Sequence[tuple[str, str, str]]):
    """Candidate flux ratio against the baseline's, per matched contaminated star."""
    data = [(p, *matched_ratio_pairs(stars, *p)) for p in pairs]
    data = [d for d in data if len(d[1])]
    if not data:
        return None
    nr, nc = grid(len(data), 2)
    fig = new_figure(5.6 * nc, 5.0 * nr)
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False)).ravel()
    for ax, ((cand, base, ds), rb, rc, changed) in zip(axes, data):
        ok = np.isfinite(rb) & np.isfinite(rc)
        vals = np.concatenate([rb[ok], rc[ok]])
        lo = max(0.0, min(0.8, np.percentile(vals, 1) - 0.02)) if vals.size else 0.8
        hi = min(3.0, max(1.2, np.percentile(vals, 99) + 0.02)) if vals.size else 1.2
        ax.axhspan(0.97, 1.03, color="#9fd49f", alpha=0.35, lw=0)
        ax.axvspan(0.97, 1.03, color="#9fd49f", alpha=0.35, lw=0)
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.7)
        same = ok & ~changed
        ax.scatter(np.clip(rb[same], lo, hi), np.clip(rc[same], lo, hi), s=9, c="#4a78c2",
                   alpha=0.6, label=f"same anomalous status ({int(same.sum())})")
        diff = ok & changed
        ax.scatter(np.clip(rb[diff], lo, hi), np.clip(rc[diff], lo, hi), s=16, c="#d62728",
                   label=f"anomalous status differs ({int(diff.sum())})")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"{base}: F_cleaned / F_clean")
        ax.set_ylabel(f"{cand}: F_cleaned / F_clean")
        ax.set_title(f"contaminated stars on {ds} ({int(ok.sum())} matched)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    for ax in axes[len(data):]:
        ax.set_visible(False)
    return fig


__all__ = ["fig_table1_bands", "fig_comparison_deltas", "fig_ratio_scatter",
           "matched_ratio_pairs"]
