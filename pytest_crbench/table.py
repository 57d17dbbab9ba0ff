"""Plain-text tables for the terminal summary (no pytest here)."""

from __future__ import annotations

from .floors import FloorKey
from .metrics import METRICS, scores

_LABELS = {"precision": "precision", "recall": "recall", "f1": "F1", "f2": "F2"}


def _cell(value, floor) -> str:
    if value is None:
        text = "undef."
    else:
        text = f"{100 * value:5.1f}"
    if floor is not None:
        margin = "" if value is None else f" {100 * (value - floor):+5.1f}"
        text += f" (>={100 * floor:4.1f}{margin})"
    return text


def score_table(evaluation, floors: dict[FloorKey, float]) -> list[str]:
    """Rows = regions, columns = recall/precision/F1/F2 in %, each with floor and margin."""
    header = ["region"] + [_LABELS[m] for m in ("recall", "precision", "f1", "f2")]
    rows = []
    for region in evaluation.regions:
        sc = scores(evaluation.pooled(region))
        row = [region]
        for metric in ("recall", "precision", "f1", "f2"):
            floor = floors.get(FloorKey(evaluation.detector, evaluation.dataset, region, metric))
            row.append(_cell(sc[metric].value, floor))
        rows.append(row)
    return _format(header, rows)


def paper_table(evaluations, dataset: str) -> list[str]:
    """Table 1 of the paper: regions as columns, recall and precision (%) per detector."""
    evs = [e for e in evaluations if e.dataset == dataset]
    if not evs:
        return []
    regions = evs[0].regions
    header = ["detector", "metric"] + [r.removeprefix("k") if r != "full" else r for r in regions]
    rows = []
    for ev in evs:
        for metric in ("recall", "precision"):
            vals = [scores(ev.pooled(r))[metric].value for r in regions]
            rows.append([ev.detector, metric] + ["-" if v is None else f"{100 * v:.1f}"
                                                 for v in vals])
    return _format(header, rows)


def _format(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


__all__ = ["METRICS", "score_table", "paper_table"]
