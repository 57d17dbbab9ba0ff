"""Reference clean images and cosmic-ray masks from a group of exposures (method.md §1).

For every exposure *i* of a group:

1. **Model.** Each exposure is turned into a rate (e-/s); bad pixels (DQ != 0) are left
   out.  For three or more exposures the model of *i* is the per-pixel median rate of the
   group times *i*'s exposure time (the "blotted median").  For a pair, the median of two
   values would carry either exposure's cosmic rays, so the model of *i* is the *other*
   exposure scaled by the exposure-time ratio (the classic CR-split comparison).
   Dithered groups are first resampled onto *i*'s pixel grid through their WCS
   (:func:`pytest_crbench.science.alignment.resample_onto`).
2. **Noise.** σ² = read noise² + max(model, 0) (Poisson, e-) + the model's own variance.
3. **Flags.** A pixel is a cosmic ray where exposure − model > ``snr_high`` σ (5); its
   8 neighbours are added where exposure − model > ``snr_low`` σ (1.5) — the two
   thresholds of AstroDrizzle's driz_cr.
4. **Clean image** = the model where flagged, the exposure elsewhere.
5. **Ignore** = DQ != 0 ∪ a ``sat_box`` × ``sat_box`` (7×7) box around every pixel at or
   above the saturation level ∪ pixels the model cannot cover (no other good exposure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pytest_crbench.errors import CRBenchDataError
from pytest_crbench.science.metrics import Counts, confusion, precision, recall
from pytest_crbench.science.exposures import Group, Reference, check_levels

__all__ = ["ReferenceConfig", "build_reference", "audit_reference", "pooled_audit"]


@dataclass(frozen=True)
class ReferenceConfig:
    snr_high: float = 5.0
    snr_low: float = 1.5
    saturation: float | None = None  # None: each exposure's own level (default 70,000 e-)
    sat_box: int = 7

    def __post_init__(self) -> None:
        if not 0 < self.snr_low <= self.snr_high:
            raise CRBenchDataError(
                f"reference thresholds must satisfy 0 < snr_low <= snr_high, got "
                f"{self.snr_low} and {self.snr_high}"
            )
        if self.sat_box < 1 or self.sat_box % 2 == 0:
            raise CRBenchDataError(f"sat_box must be an odd number >= 1, got {self.sat_box}")


def _stack_on_grid(group: Group, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rates (n, H, W) of every exposure on exposure *i*'s grid (NaN = no data), their
    exposure times and read noises; row 0 is exposure *i* itself."""
    exps = group.exposures
    order = [i] + [j for j in range(len(exps)) if j != i]
    if group.kind == "dithered":
        from pytest_crbench.science.alignment import resample_onto

        others = resample_onto(exps, i, mask_bad=True)  # others on i's grid, NaN = no data
        images = [exps[i].sci] + [others[m] for m in range(others.shape[0])]
        bad = [exps[i].bad_pixels] + [~np.isfinite(o) for o in others]
    else:
        images = [exps[j].sci for j in order]
        bad = [exps[j].bad_pixels for j in order]
    times = np.array([exps[j].exptime for j in order], np.float64)
    noise = np.array([exps[j].read_noise for j in order], np.float64)
    rates = np.stack([np.where(b, np.nan, img / t) for img, b, t in zip(images, bad, times)])
    return rates.astype(np.float32), times, noise


def build_reference(group: Group, config: ReferenceConfig | None = None) -> Reference:
    """Reference clean image, CR mask and ignore mask for every exposure of ``group``."""
    from scipy import ndimage

    config = config or ReferenceConfig()
    n = len(group.exposures)
    if n < 2:
        raise CRBenchDataError(
            f"group {group.name!r} has {n} exposure; a reference needs at least 2 exposures "
            "of the same field"
        )
    check_levels(group)
    cleans, masks, ignores = [], [], []
    grow = np.ones((3, 3), bool)
    for i, exp in enumerate(group.exposures):
        rates, times, rn = _stack_on_grid(group, i)
        t = times[0]
        if n == 2:
            model_rate = rates[1]
            model_var = (rn[1] ** 2 + np.maximum(rates[1] * times[1], 0)) / times[1] ** 2
        else:
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    model_rate = np.nanmedian(rates, axis=0)
            n_good = np.sum(np.isfinite(rates), axis=0)
            # variance of a median of m values ≈ (π/2) σ²/m, σ² from the mean exposure
            mean_var = np.mean((rn[:, None, None] ** 2 + np.maximum(
                np.nan_to_num(rates) * times[:, None, None], 0)) / times[:, None, None] ** 2,
                axis=0)
            model_var = (np.pi / 2) * mean_var / np.maximum(n_good, 1)
            # a median of fewer than 2 other good values cannot reject a cosmic ray
            n_other = np.sum(np.isfinite(rates[1:]), axis=0)
            model_rate = np.where(n_other >= 1, model_rate, np.nan)
        model = model_rate * t
        covered = np.isfinite(model)
        model = np.where(covered, model, exp.sci)
        var = rn[0] ** 2 + np.maximum(model, 0) + np.nan_to_num(model_var) * t * t
        sigma = np.sqrt(var)
        diff = exp.sci - model
        core = (diff > config.snr_high * sigma) & covered
        grown = ndimage.binary_dilation(core, structure=grow) & (diff > config.snr_low * sigma)
        crmask = (core | grown) & covered
        sat_level = config.saturation if config.saturation is not None else exp.saturation
        saturated = exp.sci >= sat_level
        if config.sat_box > 1 and saturated.any():
            box = np.ones((config.sat_box, config.sat_box), bool)
            saturated = ndimage.binary_dilation(saturated, structure=box)
        ignore = exp.bad_pixels | saturated | ~covered
        clean = np.where(crmask, model, exp.sci).astype(np.float32)
        cleans.append(clean)
        masks.append(crmask & ~ignore)
        ignores.append(ignore)
    return Reference(group=group.name, clean=cleans, crmask=masks, ignore=ignores)


def audit_reference(group: Group, reference: Reference) -> list[dict]:
    """Precision and recall of the reference CR mask against the simulation truth.

    One row per exposure that carries ``CRTRUTH``: counts and scores against every pixel
    with injected charge, and the recall of pixels whose injected charge exceeds 5σ of
    the pixel noise ("significant": the ones any method can see).  Ignored pixels are
    excluded.  Exposures without truth are left out (real data).
    """
    rows = []
    for exp, mask, ignore in zip(group.exposures, reference.crmask, reference.ignore):
        if exp.crtruth is None:
            continue
        truth = exp.crtruth > 0
        c = confusion(mask, truth, ignore)
        noise = np.sqrt(exp.read_noise ** 2 + np.maximum(exp.sci - exp.crtruth, 0))
        significant = exp.crtruth > 5 * noise
        cs = confusion(mask, significant, ignore)
        rows.append({
            "group": group.name, "exposure": exp.name, **c.as_dict(),
            "precision": precision(c).value, "recall": recall(c).value,
            "recall_significant": recall(cs).value,
            "truth_fraction": float(truth.mean()),
        })
    return rows


def pooled_audit(rows: list[dict]) -> dict:
    """Pooled precision/recall of audit rows (sum of counts)."""
    total = sum((Counts(r["tp"], r["fp"], r["fn"]) for r in rows), Counts())
    return {**total.as_dict(), "precision": precision(total).value,
            "recall": recall(total).value, "n_exposures": len(rows)}
