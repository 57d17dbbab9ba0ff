"""deepCR networks from users' weight files (``deepcr:/path/to/model.pth``).

A deepCR weight file is a plain PyTorch state dict of a ``WrappedModel`` (keys
``module.inc.…``; a bare network's keys without the ``module.`` prefix are accepted
too).  What a file does not say has to come from somewhere else, because a model
version is weights + architecture + input scale (a wrong scale wrecks the scores):

architecture and width
    inferred: the input and hidden channel counts are the shape of the first
    convolution (``inc.conv.conv.0.weight``, or ``weight_v`` for the weight-normalised
    networks), the output channels that of ``outc.conv.weight``; the network class is
    the one candidate the state dict loads into *strictly* (mask models:
    ``UNet2SigmoidBatchNorm``, ``UNet2Sigmoid``; inpainting models:
    ``UNet2BatchNorm``, ``UNet3BatchNorm``, ``UNet2``, ``UNet3``).  No two candidates
    share a parameter layout, so the choice is unambiguous.
input scale and normalisation
    not stored in a state dict.  A file whose SHA-256 equals a weight file shipped with
    deepCR takes that model's scale and normalisation (so a copy of ``ACS-WFC.pth``
    is exactly ``deepcr:ACS-WFC``); any other file needs ``scale=`` in the spec
    (deepCR 0.3.1's own ``train()`` feeds unscaled electrons: ``scale=1``; models
    from deepCR < 0.2 divided by 100: ``scale=100``) and, for mean/std-normalised
    networks such as ``WFC3-UVIS``, ``norm=true``.

Anything else — a missing file, a file that is not a state dict, a state dict of
another network — raises :class:`~pytest_crbench.errors.CRBenchDetectorError` naming
the file.  Results are cached per (path, size, mtime), so checking a spec at start-up
and loading it later read the file once.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import replace

from pytest_crbench.detectors.deepcr import (INPAINT_MODELS, MASK_MODELS, ModelSpec,
                                             _arch_class, _import_deepcr, weights_path,
                                             weights_sha256)
from pytest_crbench.errors import CRBenchDetectorError

__all__ = ["ARCH_CANDIDATES", "is_weight_path", "model_from_file"]

#: Network classes a state dict of each kind is tried against, in this order.
ARCH_CANDIDATES = {
    "mask": ("UNet2SigmoidBatchNorm", "UNet2Sigmoid"),
    "inpaint": ("UNet2BatchNorm", "UNet3BatchNorm", "UNet2", "UNet3"),
}
_IN_CHANNELS = {"mask": 1, "inpaint": 2}
_FIRST_CONV = ("module.inc.conv.conv.0.weight", "module.inc.conv.conv.0.weight_v")
_LAST_CONV = "module.outc.conv.weight"

_CACHE: dict[tuple, ModelSpec] = {}


def is_weight_path(text: str) -> bool:
    """Whether a deepCR model name in a spec is a file path rather than a shipped name."""
    t = text.strip()
    return ("/" in t or os.sep in t or t.lower().endswith((".pth", ".pt"))
            or t.startswith("~"))


def _shipped_by_hash() -> dict[str, ModelSpec]:
    out: dict[str, ModelSpec] = {}
    for table in (MASK_MODELS, INPAINT_MODELS):
        for spec in table.values():
            try:
                out[weights_sha256(weights_path(spec))] = spec
            except CRBenchDetectorError:  # deepCR not installed or file missing
                continue
    return out


def _state_dict(torch, path: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CRBenchDetectorError(
            f"deepCR weight file {path}: not a PyTorch state dict "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CRBenchDetectorError(
            f"deepCR weight file {path}: holds a {type(state).__name__}, not a state dict of "
            "tensors (save it with torch.save(model.state_dict(), path))")
    if not any(k.startswith("module.") for k in state):  # as DeepCRDetector._load
        state = {"module." + k: v for k, v in state.items()}
    return dict(state)


def _infer_arch(state: dict, kind: str, path: str) -> tuple[str, tuple[int, int, int]]:
    first = next((state[k] for k in _FIRST_CONV if k in state), None)
    last = state.get(_LAST_CONV)
    if first is None or last is None or first.ndim != 4 or last.ndim != 4:
        raise CRBenchDetectorError(
            f"deepCR weight file {path}: not a deepCR U-Net state dict (no "
            f"{_FIRST_CONV[0]!r} / {_LAST_CONV!r} convolution)")
    hidden, n_in, n_out = int(first.shape[0]), int(first.shape[1]), int(last.shape[0])
    if n_in != _IN_CHANNELS[kind] or n_out != 1:
        raise CRBenchDetectorError(
            f"deepCR weight file {path}: a network with {n_in} input and {n_out} output "
            f"channel(s) is not a deepCR {kind} model (expected {_IN_CHANNELS[kind]} and 1)")
    channels = (n_in, n_out, hidden)
    from deepCR.unet import WrappedModel

    fits = []
    for arch in ARCH_CANDIDATES[kind]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            net = WrappedModel(_arch_class(arch)(*channels))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError:
            continue
        fits.append(arch)
    if len(fits) != 1:
        raise CRBenchDetectorError(
            f"deepCR weight file {path}: the state dict loads into "
            + (f"none of the deepCR {kind} networks {', '.join(ARCH_CANDIDATES[kind])}"
               if not fits else f"several networks ({', '.join(fits)})")
            + f" with channels {channels}")
    return fits[0], channels


def model_from_file(path: str, kind: str = "mask", *, scale: float | None = None,
                    norm: bool | None = None) -> ModelSpec:
    """The :class:`~pytest_crbench.detectors.deepcr.ModelSpec` of a weight file.

    ``scale`` / ``norm`` override what a shipped copy implies and are required
    (``scale``) for any other file.  Raises :class:`CRBenchDetectorError` naming
    ``path`` when the file is missing, unreadable or not a deepCR ``kind`` network.
    """
    if kind not in ARCH_CANDIDATES:
        raise ValueError(f"kind must be 'mask' or 'inpaint', got {kind!r}")
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise CRBenchDetectorError(f"deepCR {kind} weight file {path} does not exist")
    if scale is not None and not scale > 0:
        raise CRBenchDetectorError(f"deepCR weight file {path}: scale must be > 0, got {scale}")
    st = os.stat(full)
    key = (full, kind, st.st_size, st.st_mtime_ns, scale, norm)
    if key in _CACHE:
        return _CACHE[key]
    torch, _ = _import_deepcr()
    sha = weights_sha256(full)
    shipped = _shipped_by_hash().get(sha)
    if shipped is not None and shipped.kind != kind:
        raise CRBenchDetectorError(
            f"deepCR weight file {path} is a copy of the {shipped.kind} model "
            f"{shipped.name!r}, not a {kind} model")
    state = _state_dict(torch, full)
    arch, channels = _infer_arch(state, kind, full)
    if shipped is not None:
        spec = replace(shipped, name=path, path=full, registered=False,
                       scale=shipped.scale if scale is None else float(scale),
                       norm=shipped.norm if norm is None else bool(norm))
    else:
        if scale is None:
            raise CRBenchDetectorError(
                f"deepCR weight file {path}: the input scale of a {arch}{channels} network is "
                "not stored in its state dict; give it in the spec, e.g. "
                f"deepcr:{path},scale=1 (deepCR 0.3.1's train() uses unscaled electrons: 1; "
                "models from deepCR < 0.2: 100)")
        spec = ModelSpec(name=path, kind=kind, arch=arch, channels=channels,
                         scale=float(scale), norm=bool(norm), registered=False,
                         note=f"weight file {full}", path=full)
    _CACHE[key] = spec
    return spec
