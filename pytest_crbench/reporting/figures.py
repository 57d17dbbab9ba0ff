"""The report's figures (the paper's Figs. 3, 6, 7, 8 and the failure gallery).

Plots use matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``): no global
backend switch, no pyplot state.  Each ``fig_*`` function returns a Figure, or None when
there is nothing to draw; :func:`png` renders one.
"""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Any, Mapping

import numpy as np

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.gallery import STAMP_KEYS
from pytest_crbench.science.photometry_summary import table_columns as _columns

__all__ = ["STAMP_TITLES", "fig_flux_ratio", "fig_density", "fig_stability",
           "fig_gallery_entry", "png", "new_figure", "grid"]

#: Titles of the five gallery stamps, in the order of STAMP_KEYS.
STAMP_TITLES = ("original", "original − clean\n(true CRs)", "clean reference",
                "|clean − cleaned|\n(detector errors)", "detector-cleaned")


def _parse_date(s: str):
    try:
        return datetime.fromisoformat(str(s).replace("Z", ""))
    except ValueError:
        return None


def _fit_label(fit) -> str:
    if fit is None:
        return "no fit"
    r = "r undefined" if fit.r is None else f"r = {fit.r:.2f}"
    p = "" if fit.p is None else f", p = {fit.p:.1g}"
    return f"{r}{p}, n = {fit.n}"


# --------------------------------------------------------------------------- figures

def new_figure(w, h):
    """A constrained-layout Agg figure of ``w`` x ``h`` inches (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig) -> bytes:
    """The figure as PNG bytes (100 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def grid(n: int, ncols: int = 3) -> tuple[int, int]:
    """Rows and columns of a grid of ``n`` panels, at most ``ncols`` a row."""
    ncols = min(ncols, max(n, 1))
    return int(math.ceil(n / ncols)), ncols


def _panels(n: int, height: float):
    """A figure of ``n`` panels, two a row, each 6.2 x ``height`` in; unused axes hidden."""
    ncols = min(2, max(n, 1))
    nrows = int(math.ceil(n / ncols))
    fig = new_figure(6.2 * ncols, height * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def fig_flux_ratio(stars_by_detector: Mapping[str, Any]):
    """Fig. 3: F/F_clean against F_clean (log), per detector, with the accuracy bands."""
    dets = [d for d, s in stars_by_detector.items() if len(_columns(s).get("flux_clean", []))]
    if not dets:
        return None
    fig, axes = _panels(len(dets), 4.4)
    for ax, det in zip(axes, dets):
        col = _columns(stars_by_detector[det])
        f = np.asarray(col["flux_clean"], float)
        rc = np.asarray(col["ratio_cleaned"], float)
        ro = np.asarray(col["ratio_original"], float)
        cont = np.asarray(col["contaminated"], bool)
        ok = (f > 0) & np.isfinite(rc)
        lo, hi = 0.8, 1.2
        vals = np.concatenate([rc[ok], ro[ok & np.isfinite(ro)]])
        if vals.size:
            lo = max(min(lo, np.nanpercentile(vals, 1) - 0.02), 0.0)
            hi = min(max(hi, np.nanpercentile(vals, 99) + 0.02), 3.0)
        ax.axhspan(0.9, 1.1, color="#f3d9a4", alpha=0.6, lw=0, label="[0.9, 1.1]")
        ax.axhspan(0.97, 1.03, color="#9fd49f", alpha=0.8, lw=0, label="[0.97, 1.03]")
        ax.axhline(1.0, color="k", lw=0.6)

        def scatter(r, sel, **kw):
            rr = np.clip(r[sel], lo, hi)
            clipped = (r[sel] < lo) | (r[sel] > hi)
            ax.scatter(f[sel][~clipped], rr[~clipped], **kw)
            if clipped.any():
                kw2 = dict(kw, marker="^", label=None)
                ax.scatter(f[sel][clipped], rr[clipped], **kw2)

        sel_o = ok & np.isfinite(ro) & cont
        scatter(ro, sel_o, s=10, c="0.45", marker="x", lw=0.8,
                label=f"original / clean (contaminated, {int(sel_o.sum())})")
        scatter(rc, ok & ~cont, s=9, c="#4a78c2", alpha=0.6,
                label=f"cleaned / clean, not contaminated ({int((ok & ~cont).sum())})")
        scatter(rc, ok & cont, s=14, c="#d62728",
                label=f"cleaned / clean, contaminated ({int((ok & cont).sum())})")
        ax.set_xscale("log")
        ax.set_ylim(lo, hi)
        ax.set_xlabel("clean-reference aperture flux F_clean (e⁻)")
        ax.set_ylabel("flux ratio F / F_clean")
        ax.set_title(f"{det}: {int(ok.sum())} star measurements")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    return fig


_BIN_COLOURS = ("black", "#d62728", "#1f77b4", "#2ca02c", "#9467bd")


def fig_density(density_by_detector: Mapping[str, Mapping[str, Any]]):
    """Fig. 6: contaminated and anomalous fractions against the CR pixel fraction."""
    dets = list(density_by_detector)
    if not dets:
        return None
    fig = new_figure(12.5, 4.4 * len(dets))
    axes = fig.subplots(len(dets), 2, squeeze=False)
    for row, det in zip(axes, dets):
        rel = density_by_detector[det]
        panels = [("contaminated", ["contaminated"], "contaminated stars (%)"),
                  ("anomalous", [q for q in rel if q.startswith("anomalous_")],
                   "stars with an anomalous result (%)")]
        for ax, (name, quants, ylabel) in zip(row, panels):
            any_pts = False
            for i, q in enumerate(quants):
                e = rel.get(q)
                if not e or not e["x"]:
                    continue
                any_pts = True
                colour = _BIN_COLOURS[i % len(_BIN_COLOURS)] if name == "anomalous" \
                    else "#d62728"
                x = 100 * np.asarray(e["x"], float)
                y = 100 * np.asarray(e["y"], float)
                lab = "stars" if q == "contaminated" else \
                    f"{q.removeprefix('anomalous_')} px stars"
                ax.scatter(x, y, s=16, color=colour, alpha=0.8)
                fit = e.get("fit")
                if fit is not None:
                    xs = np.linspace(0, max(x.max(), 1e-9) * 1.05, 50)
                    ax.plot(xs, 100 * fit.predict(xs / 100), color=colour,
                            label=f"{lab}: {_fit_label(fit)}")
                else:
                    ax.plot([], [], color=colour, label=f"{lab}: {e.get('reason')}")
            ax.set_xlabel("cosmic-ray pixels in the image (%)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{det}: {'(a) contamination' if name == 'contaminated' else '(b) anomalous results per size'}")
            ax.set_xlim(left=0)
            ax.grid(alpha=0.3)
            if any_pts:
                ax.legend(fontsize=8, loc="best")
            else:
                ax.text(0.5, 0.5, "no exposure with stars", transform=ax.transAxes,
                        ha="center")
    return fig


def _band_lines(ax, band, colour, label):
    if band.get("mean") is not None:
        ax.axhline(band["mean"], color=colour, lw=1.2, label=f"{label} mean")
    if band.get("lower") is not None:
        ax.axhline(band["lower"], color=colour, lw=0.9, ls="--", label=f"{label} mean ± 3σ")
        ax.axhline(band["upper"], color=colour, lw=0.9, ls="--")


def _dates(groups):
    d = [_parse_date(g["date"]) for g in groups]
    if all(v is not None for v in d) and d:
        return d, True
    return list(range(len(groups))), False


def fig_stability(stability_by_detector: Mapping[str, Mapping[str, Any]], what: str):
    """Fig. 7 (``what="f"``: F1 and F2) or Fig. 8 (``what="rms"``) against date."""
    import matplotlib.dates  # noqa: F401  (registers the datetime converter)

    dets = [d for d, s in stability_by_detector.items() if s.get("groups")]
    if not dets:
        return None
    fig, axes = _panels(len(dets), 4.0)
    for ax, det in zip(axes, dets):
        st = stability_by_detector[det]
        groups = st["groups"]
        xs, is_date = _dates(groups)
        keys = (("f1", "F1", "#1f77b4"), ("f2", "F2", "#d62728")) if what == "f" else \
            (("rms", "trimmed RMS of F_cleaned/F_clean", "#1f77b4"),)
        for key, label, colour in keys:
            vals = [g[key] for g in groups]
            pts = [(x, 100 * v if what == "f" else v) for x, v in zip(xs, vals)
                   if v is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour,
                        label=label)
            band = dict(st.get(key) or {})
            if what == "f":
                band = {k: (100 * v if isinstance(v, (int, float)) and k in
                            ("mean", "lower", "upper") else v) for k, v in band.items()}
            _band_lines(ax, band, colour, label)
            for name in band.get("outliers", []):
                for x, g in zip(xs, groups):
                    if g["group"] == name and g[key] is not None:
                        v = 100 * g[key] if what == "f" else g[key]
                        ax.annotate(name, (x, v), textcoords="offset points",
                                    xytext=(4, 4), fontsize=8, color=colour)
        if not is_date:
            ax.set_xticks(xs, [g["group"] for g in groups], rotation=45, fontsize=8)
        ax.set_xlabel("observation date" if is_date else "group")
        ax.set_ylabel("score on stars (%)" if what == "f" else "RMS of flux ratio − 1")
        ax.set_title(f"{det}: {'F1 / F2 of cosmic rays on stars' if what == 'f' else 'photometric accuracy'}")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
        if is_date:
            ax.tick_params(axis="x", labelrotation=30)
    return fig


def fig_gallery_entry(entry: Mapping[str, Any]):
    """One gallery row: the five stamps with colour bars (e⁻) and the aperture drawn."""
    from matplotlib.patches import Circle

    stamps = entry["stamps"]
    missing = [k for k in STAMP_KEYS if k not in stamps]
    if missing:
        raise CRBenchDataError(f"gallery entry {entry.get('star_id', '?')!r}: stamps "
                               f"{missing} missing")
    fig = new_figure(15.5, 3.4)
    axes = fig.subplots(1, 5)
    clean = np.asarray(stamps["clean"], float)
    finite = clean[np.isfinite(clean)]
    vmin, vmax = (np.percentile(finite, 5), np.max(finite)) if finite.size else (0, 1)
    if vmax <= vmin:
        vmax = vmin + 1
    from matplotlib.colors import AsinhNorm

    lin = max((vmax - vmin) / 30.0, 1e-6)
    for ax, key, title in zip(axes, STAMP_KEYS, STAMP_TITLES):
        a = np.asarray(stamps[key], float)
        if key == "original_minus_clean":
            m = np.nanmax(np.abs(a)) if np.isfinite(a).any() else 1.0
            im = ax.imshow(a, origin="lower", cmap="RdBu_r", vmin=-m or -1, vmax=m or 1)
        elif key == "abs_clean_minus_cleaned":
            # scale on the star (aperture + 2 px) so that far-away fills do not hide it
            yy, xx = np.mgrid[:a.shape[0], :a.shape[1]]
            c0 = (a.shape[0] - 1) / 2
            near = np.hypot(yy - c0, xx - c0) <= float(entry.get("radius") or 3) + 2
            vals = a[near & np.isfinite(a)]
            m = float(vals.max()) if vals.size and vals.max() > 0 else (
                np.nanmax(a) if np.isfinite(a).any() else 1.0)
            im = ax.imshow(a, origin="lower", cmap="magma", vmin=0, vmax=m or 1)
        else:
            im = ax.imshow(a, origin="lower", cmap="gray",
                           norm=AsinhNorm(linear_width=lin, vmin=vmin, vmax=vmax))
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label("e⁻", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        half = (a.shape[0] - 1) / 2
        if entry.get("radius"):
            cx = half + (float(entry["x"]) - round(float(entry["x"]))) if "x" in entry else half
            cy = half + (float(entry["y"]) - round(float(entry["y"]))) if "y" in entry else half
            ax.add_patch(Circle((cx, cy), float(entry["radius"]), fill=False, ec="#2ca02c",
                                lw=1.0))
    return fig
