"""Plain-text tables of score intervals and of paired comparisons (no pytest here)."""

from __future__ import annotations

from typing import Iterable

from pytest_crbench.science.bootstrap import Interval

_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1", "f2": "F2",
           "anomalous": "anomalous", "inside_97_103": "in [0.97,1.03]",
           "outside_90_110": "out [0.9,1.1]", "rms": "ratio RMS",
           "abs_ratio_minus_1": "mean |ratio-1|"}
_MARK = {"better": " better", "worse": " WORSE", "no significant difference": "",
         "undefined": ""}


def _format(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _pivot(first: str, cells: Iterable[tuple[str, str, str]]) -> list[str]:
    """A table of ``(row, metric, text)`` cells: rows in order of first appearance,
    one column per metric in order of first appearance (empty: no lines)."""
    rows: dict[str, dict[str, str]] = {}
    metrics: list[str] = []
    for part, metric, text in cells:
        if metric not in metrics:
            metrics.append(metric)
        rows.setdefault(part, {})[metric] = text
    if not rows:
        return []
    return _format([first] + [_LABELS.get(m, m) for m in metrics],
                   [[part] + [row.get(m, "") for m in metrics] for part, row in rows.items()])


def _delta(iv: Interval, scale: float = 100.0, digits: int = 1) -> str:
    if iv.value is None:
        return "undef."
    text = f"{scale * iv.value:+.{digits}f}"
    if iv.defined:
        return text + f" [{scale * iv.low:+.{digits}f}, {scale * iv.high:+.{digits}f}]"
    return text + " [n/a]"


def interval_table(intervals: Iterable, kind: str = "pixels") -> list[str]:
    """Rows = regions (or size bins), columns = metrics, cells ``90.9 [89.2, 92.4]`` (%)."""
    first = {"pixels": "region", "photometry": "stars"}.get(kind, kind)
    return _pivot(first, (("mean over groups" if kind == "stability" else si.part, si.metric,
                           format(si.interval, "" if si.metric == "rms" else "pct"))
                          for si in intervals if si.kind == kind))


def comparison_lines(diffs: list, *, max_drop: float, confidence: float) -> list[str]:
    """One block per (candidate, baseline, dataset): Δ per region and metric, photometric
    fractions, matched stars (McNemar) and stability, with verdicts."""
    blocks: dict[tuple[str, str, str], list] = {}
    for d in diffs:
        blocks.setdefault((d.candidate, d.baseline, d.dataset), []).append(d)
    lines: list[str] = []
    for (cand, base, ds), ds_diffs in blocks.items():
        lines.append(f"{cand} vs {base} on {ds}: candidate - baseline in percentage points, "
                     f"{100 * confidence:g} % paired bootstrap interval")
        for kind, first in (("pixels", "region"), ("photometry", "stars")):
            lines += _pivot(first, ((d.part, d.metric, _delta(d.delta) + _MARK[d.verdict])
                                    for d in ds_diffs if d.kind == kind))
        stars: dict[str, dict[str, object]] = {}
        for d in ds_diffs:
            if d.kind == "stars":
                stars.setdefault(d.part, {})[d.metric] = d
        star_rows = []
        for part, by in stars.items():
            m, a = by.get("anomalous"), by.get("abs_ratio_minus_1")
            if m is None or not m.pairs:
                continue
            star_rows.append([
                part, str(m.pairs),
                f"{100 * m.candidate_value:.1f} vs {100 * m.baseline_value:.1f}",
                f"{m.candidate_only} / {m.baseline_only}", f"{m.p_value:.2g}"
                + _MARK[m.verdict],
                "" if a is None else _delta(a.delta, digits=2) + _MARK[a.verdict]])
        if star_rows:
            lines += _format(["matched stars", "contaminated", "anomalous % (cand vs base)",
                              "only cand / only base", "McNemar p",
                              "mean |ratio-1| (pp)"], star_rows)
        for d in ds_diffs:
            if d.kind == "stability":
                scale = 1.0 if d.metric == "rms" else 100.0
                lines.append(f"stability: mean {_LABELS.get(d.metric, d.metric)} over groups "
                             f"{_delta(d.delta, scale, 4 if d.metric == 'rms' else 1)}"
                             f"{_MARK[d.verdict]}")
        failing = [d for d in ds_diffs if d.kind in ("pixels", "photometry")
                   and not d.non_inferior(max_drop)]
        if any(not d.delta.defined and d.delta.value is not None and d.p_value is None
               for d in ds_diffs):
            lines.append("[n/a]: no interval (too few positives or groups)")
        lines.append(f"non-inferiority (max drop {max_drop:g}): "
                     + ("every score passes" if not failing else
                        f"{len(failing)} fail: " + ", ".join(
                            f"{d.part} {_LABELS.get(d.metric, d.metric)}" for d in failing)))
        lines.append("")
    return lines[:-1] if lines and lines[-1] == "" else lines


__all__ = ["interval_table", "comparison_lines"]
