"""Report figures and terminal lines of the threshold sweeps (ROC and precision–recall).

One panel per star region, one curve per probability detector.  The ROC panels plot the
true-positive rate against a logarithmic false-positive rate (the deepCR paper's fixed
rates, 0.05 % and 0.5 %, are marked); the precision–recall panels plot precision
against recall.  Each detector's operating point at its own threshold is a dot.
Input: ``{detector: (ThresholdSweep, threshold)}`` of one dataset.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pytest_crbench.reporting.figures import grid, new_figure
from pytest_crbench.reporting.formatting import pct
from pytest_crbench.science.sweeps import FIXED_FPRS, ThresholdSweep

__all__ = ["fig_pr", "fig_roc", "sweep_lines"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#17becf")


def _figure(n: int):
    """A grid of ``n`` small panels, four a row; unused axes hidden."""
    nrows, ncols = grid(n, 4)
    fig = new_figure(3.6 * ncols, 3.3 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _point(sweep: ThresholdSweep, region: str, threshold: float | None):
    if threshold is None:
        return None
    try:
        return sweep.curve(region).at_threshold(threshold)
    except ValueError:  # a threshold off the grid: no dot
        return None


def fig_roc(sweeps: Mapping[str, tuple[ThresholdSweep, float | None]], dataset: str):
    """ROC curves per region (TPR against log FPR); None without probability detectors."""
    if not sweeps:
        return None
    regions = next(iter(sweeps.values()))[0].regions
    fig, axes = _figure(len(regions))
    for ax, region in zip(axes, regions):
        for colour, (det, (sweep, thr)) in zip(_COLOURS * 4, sweeps.items()):
            c = sweep.curve(region)
            if c.undefined():
                continue
            x, y = c.roc()
            keep = x > 0
            auc = c.auc()
            ax.plot(x[keep], y[keep], color=colour, lw=1.2, label=f"{det} (AUC {auc:.4f})")
            pt = _point(sweep, region, thr)
            if pt is not None and pt.fpr and pt.tpr is not None:
                ax.plot([pt.fpr], [pt.tpr], "o", color=colour, ms=4)
        for f in FIXED_FPRS:
            ax.axvline(f, color="0.6", lw=0.7, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(1e-6, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"{dataset}: {region}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def fig_pr(sweeps: Mapping[str, tuple[ThresholdSweep, float | None]], dataset: str):
    """Precision–recall curves per region; None without probability detectors."""
    if not sweeps:
        return None
    regions = next(iter(sweeps.values()))[0].regions
    fig, axes = _figure(len(regions))
    for ax, region in zip(axes, regions):
        for colour, (det, (sweep, thr)) in zip(_COLOURS * 4, sweeps.items()):
            c = sweep.curve(region)
            if not c.positives:
                continue
            prec = c.precision
            ok = np.isfinite(prec)
            ap = c.average_precision()
            ax.plot(c.tpr[ok], prec[ok], color=colour, lw=1.2, label=f"{det} (AP {ap:.4f})")
            pt = _point(sweep, region, thr)
            if pt is not None and pt.tpr is not None and pt.precision is not None:
                ax.plot([pt.tpr], [pt.precision], "o", color=colour, ms=4)
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{dataset}: {region}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return fig


def _pct(v) -> str:
    return pct(v, missing="n/a").rjust(5)


def sweep_lines(sweeps: Mapping[str, ThresholdSweep], dataset: str,
                region: str = "full") -> list[str]:
    """One line per probability detector: AUC, AP and TPR (precision) at the fixed FPRs."""
    lines = []
    for det, sweep in sweeps.items():
        s = sweep.summary(region)
        if s["undefined"]:
            lines.append(f"  sweep {det} on {dataset} ({region}): {s['undefined']}")
            continue
        at = "; ".join(
            f"at FPR {100 * float(f):g} %: TPR {_pct(p['tpr']).strip()} %, precision "
            f"{_pct(p['precision']).strip()} %" for f, p in s["at_fpr"].items())
        lines.append(f"  sweep {det} on {dataset} ({region}): AUC {s['auc']:.4f}, "
                     f"AP {s['average_precision']:.4f}; {at}")
    return lines
