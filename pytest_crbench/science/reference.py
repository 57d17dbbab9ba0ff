"""Reference clean images and cosmic-ray masks from a group of exposures (method.md §1).

For every exposure *i* of a group:

1. **Model** (:func:`blotted_model`).  Each exposure is turned into a rate (e-/s); bad
   pixels (DQ != 0) are left out.  For three or more exposures the model of *i* is the
   per-pixel median rate of the group times *i*'s exposure time (the "blotted median").
   For a pair, the median of two values would carry either exposure's cosmic rays, so the
   model of *i* is the *other* exposure scaled by the exposure-time ratio (the classic
   CR-split comparison).  Dithered groups are first resampled onto *i*'s pixel grid
   through their WCS (:func:`pytest_crbench.science.alignment.resample_onto`).
2. **Flags**, by one of two rules (:data:`REFERENCE_RULES`):

   * ``astrodrizzle`` (default; the paper's): AstroDrizzle's ``driz_cr``
     (:mod:`pytest_crbench.science.drizcr`): |exposure − model| > scale₁·deriv(model) +
     snr₁·noise, then the 3×3 neighbours of those pixels where |exposure − model| >
     scale₂·deriv + snr₂·noise, then ``grow``/``ctegrow``; noise = sqrt(|model| + rn²)
     (electrons, the sky kept in the model).  For a pair only positive excess counts:
     a negative one is the other exposure's own cosmic ray.
   * ``noise``: the derivative term left out, a one-sided excess and a noise that also
     carries the model's own variance: exposure − model > snr₁ σ, and its 3×3 neighbours
     where exposure − model > snr₂ σ, σ² = rn² + max(model, 0) + var(model).

   ``snr`` = (5, 1.5) are the paper's "5 and 1.5 RMS"; ``scale`` = (1.2, 0.7) is
   AstroDrizzle's default, which the paper did not change.
3. **Clean image** = the model where flagged, the exposure elsewhere.
4. **Ignore** = DQ != 0 ∪ a ``sat_box`` × ``sat_box`` (7×7) box around every pixel at or
   above the saturation level ∪ pixels the model cannot cover (no other good exposure).

:func:`reference_for` computes one exposure's reference in strips of rows (each read
with the rows of context the flag growth and the saturation box need), so its float
temporaries are those of one strip: the result equals :func:`build_reference`'s, bit for
bit, whatever the strip size.  The other exposures of the group may be
:class:`~pytest_crbench.datasets.fits.LazyExposure` (read row by row).  The medians use
:func:`nanmedian0` (equal to ``np.nanmedian``, bit for bit, and faster on short stacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError
from pytest_crbench.science.drizcr import DrizCRParams, cte_direction, driz_cr_mask, two_pass_mask
from pytest_crbench.science.exposures import Exposure, Group, Reference, check_levels

__all__ = ["REFERENCE_RULES", "ReferenceConfig", "blotted_model", "blotted_models",
           "noise_rule_mask", "reference_mask", "build_reference", "nanmedian0",
           "reference_for", "STRIP_ROWS"]

#: The reference rules: AstroDrizzle's driz_cr (the paper's) and the noise-only rule.
REFERENCE_RULES = ("astrodrizzle", "noise")


@dataclass(frozen=True)
class ReferenceConfig:
    """How reference masks are built: the rule, its parameters, the saturation boxes.

    ``snr`` is used by both rules; ``scale``, ``grow`` and ``ctegrow`` by
    ``astrodrizzle`` only (see :class:`~pytest_crbench.science.drizcr.DrizCRParams`).
    """

    rule: str = "astrodrizzle"
    snr: tuple[float, float] = (5.0, 1.5)
    scale: tuple[float, float] = (1.2, 0.7)
    grow: int = 1
    ctegrow: int = 0
    saturation: float | None = None  # None: each exposure's own level (default 70,000 e-)
    sat_box: int = 7

    def __post_init__(self) -> None:
        if self.rule not in REFERENCE_RULES:
            raise CRBenchConfigError(
                f"reference: expected one of {', '.join(REFERENCE_RULES)}, got {self.rule!r}")
        params = DrizCRParams(self.snr, self.scale, self.grow, self.ctegrow)
        for name in ("snr", "scale", "grow", "ctegrow"):
            object.__setattr__(self, name, getattr(params, name))
        if self.sat_box < 1 or self.sat_box % 2 == 0:
            raise CRBenchDataError(f"sat_box must be an odd number >= 1, got {self.sat_box}")

    @property
    def drizcr(self) -> DrizCRParams:
        return DrizCRParams(self.snr, self.scale, self.grow, self.ctegrow)

    def provenance(self) -> dict[str, Any]:
        """The rule and the parameters it uses (what makes two references comparable)."""
        out: dict[str, Any] = {"rule": self.rule, "snr": list(self.snr)}
        if self.rule == "astrodrizzle":
            out.update(scale=list(self.scale), grow=self.grow, ctegrow=self.ctegrow)
        out.update(saturation=self.saturation, sat_box=self.sat_box)
        return out

    def describe(self) -> str:
        """One line for headers: ``astrodrizzle (snr 5/1.5, scale 1.2/0.7, grow 1)``."""
        snr = "/".join(f"{v:g}" for v in self.snr)
        if self.rule == "noise":
            return f"noise (snr {snr})"
        scale = "/".join(f"{v:g}" for v in self.scale)
        tail = f", ctegrow {self.ctegrow}" if self.ctegrow else ""
        return f"astrodrizzle (snr {snr}, scale {scale}, grow {self.grow}{tail})"


#: Rows per strip of :func:`reference_for`: the float temporaries of a strip of a 9216-px
#: wide chip stay below ~50 MB whatever the chip height.
STRIP_ROWS = 512


def nanmedian0(stack: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN, for a short axis 0 (a group of exposures).

    Equal, bit for bit, to ``np.nanmedian(stack, axis=0)`` for finite values and NaN
    (all-NaN lanes give NaN, an even count the mean of the two middle values in the
    stack's dtype); see :func:`_nanmedian_count` for how it is computed.
    """
    return _nanmedian_count(stack)[0]


def _sorting_network(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort for ``n`` values: compare-exchange pairs (i < j)."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs, p = [], 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return [(a, b) for a, b in pairs if b < n]  # the padding values would stay last


@lru_cache(maxsize=None)
def _median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The compare-exchanges of :func:`_sorting_network` that the two middle values
    depend on, with which of their two outputs (low, high) is needed."""
    needed, steps = {(n - 1) // 2, n // 2}, []
    for a, b in reversed(_sorting_network(n)):
        if a in needed or b in needed:
            steps.append((a, b, a in needed, b in needed))
            needed |= {a, b}
    return tuple(reversed(steps))


#: The longest stack whose median is taken by a sorting network (longer ones are sorted).
_NETWORK_MAX = 16


def _nanmedian_count(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nanmedian0` of ``stack`` and the number of finite values per lane.

    The median is ``(s[lo] + s[hi]) / 2`` in the stack's dtype, ``s`` the lane sorted
    with NaN last and lo, hi the middle indices of its ``m`` finite values (so ±inf
    count among the values but not in ``m``).  Lanes whose values are all finite (nearly
    all) take the two middle values from a sorting network pruned to them (min/max of
    pairs: the same values as a sort); the other lanes, and those whose median is zero
    (where the order of -0 and +0 would matter), are sorted.
    """
    n = stack.shape[0]
    small = np.uint8 if n < 256 else np.intp  # a narrow sum is faster; counts are intp
    count = np.isfinite(stack).sum(axis=0, dtype=small).astype(np.intp)
    if n > _NETWORK_MAX or n == 0:
        return _sorted_median(stack, count), count
    rows = list(stack)
    for a, b, low, high in _median_network(n):
        x, y = rows[a], rows[b]
        if low:
            rows[a] = np.fmin(x, y)
        if high:
            rows[b] = np.maximum(x, y)
    with np.errstate(invalid="ignore", over="ignore"):
        out = (rows[(n - 1) // 2] + rows[n // 2]) / stack.dtype.type(2)
    out = np.asarray(out, stack.dtype)
    # lanes with NaN or inf, and lanes whose middle values are zeros: sorted, as the
    # whole stack would be (min/max of -0 and +0 may return one of them twice)
    partial = np.flatnonzero((count != n) | (out == 0))
    if partial.size:
        lanes = stack.reshape(n, -1)[:, partial]
        out.reshape(-1)[partial] = _sorted_median(lanes, count.reshape(-1)[partial])
    return out, count


def _sorted_median(stack: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The median of :func:`_nanmedian_count` by one sort along the short axis."""
    s = np.sort(stack, axis=0)  # NaN sorts last
    lo = np.take_along_axis(s, np.maximum((count - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(s, (count // 2).clip(max=stack.shape[0] - 1)[None], 0)[0]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(count > 0, (lo + hi) / stack.dtype.type(2), np.nan).astype(stack.dtype)


def _rates(images, bad, times) -> np.ndarray:
    """Rates (n, rows, cols), float32, of ``images`` over their exposure ``times``, NaN
    where ``bad``: each divided in float64 and rounded once to float32."""
    out = np.empty((len(images),) + np.shape(images[0]), np.float32)
    for k, (img, b, t) in enumerate(zip(images, bad, times)):
        np.divide(np.asarray(img), np.float64(t), out=out[k], dtype=np.float64,
                  casting="unsafe")
        np.copyto(out[k], np.nan, where=np.asarray(b, bool))
    return out


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
    return _rates(images, bad, times), times, noise


def _median_model(rates: np.ndarray, times: np.ndarray, rn: np.ndarray, *,
                  variance: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Per-pixel median rate of a stack, the variance of that median (rate²; None
    unless ``variance``) and the number of good values per pixel."""
    model_rate, n_good = _nanmedian_count(rates)
    if not variance:
        return model_rate, None, n_good
    # variance of a median of m values ≈ (π/2) σ²/m, σ² from the mean exposure: the mean
    # over exposures of (rn² + max(rate·t, 0)) / t², NaN rates counting 0 and +inf the
    # dtype's largest value (as np.nan_to_num), summed in exposure order (as np.mean)
    big = np.finfo(rates.dtype).max
    rn2, t2 = rn ** 2, times ** 2
    total = None
    for k in range(rates.shape[0]):
        term = np.multiply(np.minimum(rates[k], big), times[k], dtype=np.float64)
        np.fmax(term, 0.0, out=term)  # NaN -> 0
        term += rn2[k]
        term /= t2[k]
        total = term if total is None else np.add(total, term, out=total)
    mean_var = total / rates.shape[0]
    return model_rate, (np.pi / 2) * mean_var / np.maximum(n_good, 1), n_good


def _pair_variance(rate: np.ndarray, t: np.float64, rn: np.float64) -> np.ndarray:
    """Variance (rate²) of the other exposure of a pair, the model of a pair."""
    return (rn ** 2 + np.maximum(rate * t, 0)) / t ** 2


def _finish_model(exp: Exposure, model_rate: np.ndarray, var_rate: np.ndarray | None,
                  usable: np.ndarray, sci: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    t = exp.exptime
    sci = exp.sci if sci is None else sci
    model = np.where(usable, model_rate, np.nan) * t
    covered = np.isfinite(model)
    model_var = None if var_rate is None else np.nan_to_num(var_rate) * t * t
    return np.where(covered, model, sci), model_var, covered


def blotted_model(group: Group, i: int, *, variance: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The model of exposure *i* (e-, on its grid), the model's own variance (e-²; None
    unless ``variance``: only the ``noise`` rule reads it) and where the model is
    defined (``covered``); elsewhere the model is the exposure."""
    exp = group.exposures[i]
    rates, times, rn = _stack_on_grid(group, i)
    if len(group.exposures) == 2:
        var_rate = _pair_variance(rates[1], times[1], rn[1]) if variance else None
        return _finish_model(exp, rates[1], var_rate, np.isfinite(rates[1]))
    model_rate, var_rate, _ = _median_model(rates, times, rn, variance=variance)
    # a median with no other good value cannot reject a cosmic ray
    n_other = np.sum(np.isfinite(rates[1:]), axis=0)
    return _finish_model(exp, model_rate, var_rate, n_other >= 1)


def blotted_models(group: Group, *, variance: bool = True):
    """:func:`blotted_model` of every exposure, in order.  For a same-pointing group of
    three or more the median is the same for every exposure: it is computed once."""
    n = len(group.exposures)
    if group.kind == "dithered" or n == 2:
        for i in range(n):
            yield blotted_model(group, i, variance=variance)
        return
    rates, times, rn = _stack_on_grid(group, 0)  # rows in exposure order
    model_rate, var_rate, n_good = _median_model(rates, times, rn, variance=variance)
    for i, exp in enumerate(group.exposures):
        n_other = n_good - np.isfinite(rates[i])
        yield _finish_model(exp, model_rate, var_rate, n_other >= 1)


def noise_rule_mask(excess: np.ndarray, sigma: np.ndarray, snr: tuple[float, float]) -> np.ndarray:
    """The ``noise`` rule: excess > snr₁ σ, and its 3×3 neighbours where excess > snr₂ σ."""
    return two_pass_mask(excess, snr[0] * sigma, snr[1] * sigma)


def reference_mask(exp: Exposure, model: np.ndarray, model_var: np.ndarray | None,
                   config: ReferenceConfig, *, pair: bool = False) -> np.ndarray:
    """Cosmic-ray flags of ``exp`` against its ``model`` by ``config.rule`` (the model's
    variance ``model_var`` is read by the ``noise`` rule only; None for the other)."""
    return _flags(exp, exp.sci, model, model_var, config, pair=pair)


def _flags(exp: Exposure, sci: np.ndarray, model: np.ndarray, model_var: np.ndarray | None,
           config: ReferenceConfig, *, pair: bool = False) -> np.ndarray:
    """:func:`reference_mask` of ``sci`` (all of ``exp.sci``, or a strip of it)."""
    if config.rule == "noise":
        sigma = np.sqrt(exp.read_noise ** 2 + np.maximum(model, 0) + model_var)
        return noise_rule_mask(sci - model, sigma, config.snr)
    cte_dir = cte_direction(exp.instrument, exp.detector, exp.chip) if config.ctegrow else 0
    if config.ctegrow and cte_dir == 0:
        raise CRBenchConfigError(
            f"{exp.source or exp.name}: reference_ctegrow = {config.ctegrow} needs the "
            f"readout direction, which is not known for {exp.instrument}/{exp.detector}; "
            "set reference_ctegrow = 0")
    mask = driz_cr_mask(sci, model.astype(np.float32), gain=1.0,
                        read_noise=float(exp.read_noise), params=config.drizcr, cte_dir=cte_dir)
    if pair:
        mask &= sci > model
    return mask


def _finish_reference(exp: Exposure, sci: np.ndarray, bad: np.ndarray, model: np.ndarray,
                      model_var: np.ndarray | None, covered: np.ndarray, config: ReferenceConfig,
                      *, pair: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean image, CR mask and ignore mask of ``sci`` (an exposure or a strip of it)."""
    crmask = _flags(exp, sci, model, model_var, config, pair=pair) & covered
    sat_level = config.saturation if config.saturation is not None else exp.saturation
    saturated = sci >= sat_level
    if config.sat_box > 1 and saturated.any():
        saturated = _box_dilation(saturated, config.sat_box)
    ignore = bad | saturated | ~covered
    clean = np.where(crmask, model, sci).astype(np.float32)
    return clean, crmask & ~ignore, ignore


def _box_dilation(mask: np.ndarray, size: int) -> np.ndarray:
    """``mask`` grown by a ``size`` × ``size`` box (odd size; nothing beyond the image):
    ``ndimage.binary_dilation`` with a box, done as a column then a row of shifts."""
    half, out = size // 2, mask.copy()
    for d in range(1, half + 1):
        out[d:] |= mask[:-d]
        out[:-d] |= mask[d:]
    cols = out.copy()
    for d in range(1, half + 1):
        out[:, d:] |= cols[:, :-d]
        out[:, :-d] |= cols[:, d:]
    return out


def _check_group(group: Group) -> None:
    n = len(group.exposures)
    if n < 2:
        raise CRBenchDataError(
            f"group {group.name!r} has {n} exposure; a reference needs at least 2 exposures "
            "of the same field"
        )
    check_levels(group)  # lazily read exposures too: rows and a sparse grid are read


def reference_for(group: Group, i: int, config: ReferenceConfig | None = None, *,
                  strip_rows: int = STRIP_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean image (float32), CR mask and ignore mask of exposure *i* of ``group``: the
    same arrays as ``build_reference(group, config)`` gives for *i*, computed in strips
    of ``strip_rows`` rows (with the rows of context the rule needs), so the float
    temporaries are those of one strip; the result does not depend on ``strip_rows``."""
    config = config or ReferenceConfig()
    _check_group(group)
    exps = group.exposures
    n = len(exps)
    exp = exps[i]
    if group.kind == "dithered":
        from pytest_crbench.science.alignment import resample_onto

        others = resample_onto(exps, i, mask_bad=True)
        images = [exp.sci] + [others[m] for m in range(others.shape[0])]
        bads = [exp.dq] + [~np.isfinite(o) for o in others]
        order, row = [i] + [j for j in range(n) if j != i], 0
    elif n == 2:
        order, row = [i, 1 - i], 0
        images, bads = [exps[j].sci for j in order], [exps[j].dq for j in order]
    else:  # exposure order, as blotted_models (the same sums, bit for bit)
        order, row = list(range(n)), i
        images, bads = [e.sci for e in exps], [e.dq for e in exps]
    times = np.array([exps[j].exptime for j in order], np.float64)
    rn = np.array([exps[j].read_noise for j in order], np.float64)
    H = exp.shape[0]
    variance = config.rule == "noise"  # the model's own variance: the noise rule's alone
    # rows of context: derivative + 3x3 second pass (2), box growth, CTE tail, saturation box
    halo = 4 + config.grow + config.ctegrow + config.sat_box // 2
    clean = np.empty(exp.shape, np.float32)
    crmask = np.empty(exp.shape, bool)
    ignore = np.empty(exp.shape, bool)
    step = max(1, int(strip_rows))
    for r0 in range(0, H, step):
        r1 = min(H, r0 + step)
        a0, a1 = max(0, r0 - halo), min(H, r1 + halo)
        keep = slice(r0 - a0, r1 - a0)
        bad_rows = [np.asarray(b[a0:a1]) != 0 for b in bads]  # DQ != 0, or no data
        rates = _rates([img[a0:a1] for img in images], bad_rows, times)
        sci = exp.sci[a0:a1]
        if n == 2:
            var_rate = _pair_variance(rates[1], times[1], rn[1]) if variance else None
            model = _finish_model(exp, rates[1], var_rate, np.isfinite(rates[1]), sci)
        else:
            model_rate, var_rate, n_good = _median_model(rates, times, rn, variance=variance)
            n_other = n_good - np.isfinite(rates[row])
            model = _finish_model(exp, model_rate, var_rate, n_other >= 1, sci)
        del rates
        c, m, g = _finish_reference(exp, sci, bad_rows[row], *model, config, pair=n == 2)
        clean[r0:r1], crmask[r0:r1], ignore[r0:r1] = c[keep], m[keep], g[keep]
    return clean, crmask, ignore


def build_reference(group: Group, config: ReferenceConfig | None = None) -> Reference:
    """Reference clean image, CR mask and ignore mask for every exposure of ``group``."""
    config = config or ReferenceConfig()
    _check_group(group)
    n = len(group.exposures)
    cleans, masks, ignores = [], [], []
    models = blotted_models(group, variance=config.rule == "noise")
    for exp, (model, model_var, covered) in zip(group.exposures, models):
        clean, crmask, ignore = _finish_reference(exp, exp.sci, exp.bad_pixels, model,
                                                  model_var, covered, config, pair=n == 2)
        cleans.append(clean)
        masks.append(crmask)
        ignores.append(ignore)
    return Reference(group=group.name, clean=cleans, crmask=masks, ignore=ignores)
