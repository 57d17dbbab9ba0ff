"""Matplotlib helpers shared by the report's figure modules (Agg canvas, no pyplot)."""

from __future__ import annotations

import io
import math

__all__ = ["_new_figure", "_png", "_grid"]


def _new_figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    ncols = min(ncols, max(n, 1))
    return int(math.ceil(n / ncols)), ncols
