"""Cosmic-CoNN (Xu et al. 2023, ApJ 942, 73) as a pytest-crbench detector.

Spec: ``cosmicconn`` (the ``HST_ACS_WFC`` model) or ``cosmicconn:<model>`` with
``<model>`` one of the networks the ``cosmic-conn`` wheel ships: ``HST_ACS_WFC``,
``ground_imaging``, ``NRES``.  Options after a comma: ``patch=N`` (tile size, a
multiple of 16; default 1024, the wheel's own).  The weights are the files inside the
wheel (``cosmic_conn/trained_models``): nothing is downloaded, ever.  The version names
the library, the model and the SHA-256 of its weight file.

Inference reproduces the wheel's ``detect_cr`` (tiles of ``patch`` pixels without
overlap; each tile's median subtracted; edge tiles cropped to a multiple of 16 pixels,
so the last ``h % 16`` rows and ``w % 16`` columns of an image get probability 0, as in
the wheel), with three differences that matter to a benchmark:

* it runs on the device this run asks for (the wheel picks CUDA whenever there is one),
  under ``torch.inference_mode()``;
* an exception inside the network propagates (the wheel's tiled path catches every
  exception and reports "Memory too small?");
* the library's process-wide side effects are contained: importing it sets
  ``torch.backends.cudnn.benchmark = True`` (non-deterministic kernel choice) and
  ``init_model`` calls ``logging.basicConfig`` (which would install a root handler in
  the user's process) and ``torch.set_default_dtype``; all three are restored.

The image is fed in electrons, as the HST model was trained (on the deepCR ACS/WFC
training set); ignored pixels are passed as they are and excluded by the scores.
``detect`` returns the probability and ``mask = probability >= threshold``.  (Feeding
the image scaled by 0.25 or 4 instead did not raise its precision on ``sim``; measured
there at threshold 0.5: recall 59 %, precision 69 % on the full image, precision 12 %
in k3 — it flags star light.)
torch and cosmic_conn are imported in the constructor, never at module import.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import numpy as np

from pytest_crbench.detectors.base import Prediction, parse_options
from pytest_crbench.errors import CRBenchDetectorError
from pytest_crbench.detectors.torch_runtime import resolve_device

__all__ = ["MODELS", "CosmicCoNNDetector", "make_detector", "parse_spec"]

#: Model name → weight file stem inside the wheel's ``trained_models`` folder.
MODELS = {
    "HST_ACS_WFC": "cosmic-conn_HST_ACS_WFC",
    "ground_imaging": "cosmic-conn_ground_imaging",
    "NRES": "cosmic-conn_LCO_NRES",
}
DEFAULT_PATCH = 1024
_MODULO = 16  # the network's down-sampling depth: inputs must be multiples of 16


@contextlib.contextmanager
def _contained(torch):
    """Restore the global state Cosmic-CoNN changes on import and initialisation."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.enabled, torch.get_default_dtype())
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.enabled = saved[0], saved[1]
        torch.set_default_dtype(saved[2])
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


class CosmicCoNNDetector:
    """One of the Cosmic-CoNN networks shipped in the ``cosmic-conn`` wheel."""

    def __init__(self, model: str = "HST_ACS_WFC", *, threshold: float | None = 0.5,
                 device: str = "cpu", patch: int = DEFAULT_PATCH) -> None:
        folded = {m.lower(): m for m in MODELS}
        if model.lower() not in folded:
            raise CRBenchDetectorError(
                f"cosmicconn: unknown model {model!r}; the wheel ships {', '.join(MODELS)}")
        self.model = folded[model.lower()]
        self.threshold = 0.5 if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise CRBenchDetectorError(f"cosmicconn: threshold must be in [0, 1], got {threshold}")
        patch = int(patch)
        if patch < _MODULO or patch % _MODULO:
            raise CRBenchDetectorError(
                f"cosmicconn: patch must be a positive multiple of {_MODULO}, got {patch}")
        self.patch = patch
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CRBenchDetectorError(f"cosmicconn needs torch ({exc})") from exc
        self._torch = torch
        with _contained(torch):
            try:
                import cosmic_conn
                from cosmic_conn.dl_framework.options import ModelOptions
                from cosmic_conn.inference_cr import MODEL_VERSON, init_model
            except ImportError as exc:
                raise CRBenchDetectorError(
                    f"the cosmicconn detector needs the cosmic-conn package ({exc}); install "
                    "it with pip install 'pytest-crbench[cosmicconn]'") from exc
            weights = os.path.join(os.path.dirname(cosmic_conn.__file__), "trained_models",
                                   f"{MODELS[self.model]}_v{MODEL_VERSON}.pth")
            if not os.path.isfile(weights):
                raise CRBenchDetectorError(f"cosmicconn: the wheel's weight file {weights} "
                                           "is missing (reinstall cosmic-conn)")
            opt = ModelOptions()
            opt.verbose = False
            try:
                net = init_model(self.model, opt).network
            except Exception as exc:
                raise CRBenchDetectorError(
                    f"cosmicconn: model {self.model} failed to load from {weights}: "
                    f"{type(exc).__name__}: {exc}") from exc
        from pytest_crbench.detectors.deepcr import weights_sha256

        self.device = resolve_device(torch, device, "cosmicconn")
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.network = net.to(self.device)
        self.library_version = getattr(cosmic_conn, "__version__", None) or _dist_version()
        self.weights_sha256 = weights_sha256(weights)
        self.name = "cosmicconn" + ("" if self.model == "HST_ACS_WFC" else f":{self.model}")
        self.version = (f"Cosmic-CoNN {self.library_version} {self.model} v{MODEL_VERSON} "
                        f"sha256:{self.weights_sha256[:12]} patch={self.patch}")

    def __repr__(self) -> str:
        return (f"CosmicCoNNDetector({self.model!r}, threshold={self.threshold}, "
                f"device={self.device!r}, patch={self.patch})")

    def synchronize(self) -> None:
        """Wait for queued GPU work (for timing); a no-op on CPU."""
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize(self.device)

    def probability(self, image: np.ndarray) -> np.ndarray:
        """The network's per-pixel cosmic-ray probability (float32, image shape)."""
        torch = self._torch
        img = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
        if img.ndim != 2:
            raise CRBenchDetectorError(f"{self.name}: image must be 2-D, got shape {img.shape}")
        h, w = img.shape
        out = np.zeros((h, w), np.float32)
        p = self.patch
        with torch.inference_mode():
            for y0 in range(0, h, p):
                for x0 in range(0, w, p):
                    t = torch.from_numpy(np.ascontiguousarray(img[y0:y0 + p, x0:x0 + p]))
                    t = t.to(self.device)
                    t = t - t.median()  # over the whole tile, before the crop (as the wheel)
                    th, tw = t.shape
                    if th < p or tw < p:  # the wheel's modulus_boundary_crop
                        th, tw = th - th % _MODULO, tw - tw % _MODULO
                        if th == 0 or tw == 0:
                            continue
                    r = self.network(t[None, None, :th, :tw])[0, 0]
                    out[y0:y0 + th, x0:x0 + tw] = r.float().cpu().numpy()
        return out

    def detect(self, image: np.ndarray, ignore: np.ndarray | None = None,
               exposure: Any = None) -> Prediction:
        prob = self.probability(image)
        return Prediction(mask=prob >= self.threshold, probability=prob)


def _dist_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("cosmic-conn")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def parse_spec(spec: str) -> tuple[str, dict[str, int]]:
    """``[<model>][,patch=N]`` (what follows ``cosmicconn:``) → (model, options);
    checked without importing anything heavy."""
    model, _, rest = (spec or "").partition(",")
    model = model.strip() or "HST_ACS_WFC"
    folded = {m.lower(): m for m in MODELS}
    if model.lower() not in folded:
        raise CRBenchDetectorError(
            f"cosmicconn: unknown model {model!r}; the wheel ships {', '.join(MODELS)}")
    kwargs: dict[str, int] = {}
    for key, value in parse_options(rest, "cosmicconn", ("patch",)).items():
        try:
            kwargs[key] = int(value)
        except ValueError:
            raise CRBenchDetectorError(f"cosmicconn: {key} must be an integer, got {value!r}") from None
    return folded[model.lower()], kwargs


def make_detector(spec: str = "", *, threshold: float | None = None,
                  device: str = "cpu") -> CosmicCoNNDetector:
    """Factory: ``spec`` is what follows ``cosmicconn:`` — ``[<model>][,patch=N]``."""
    model, kwargs = parse_spec(spec)
    return CosmicCoNNDetector(model, threshold=threshold, device=device, **kwargs)
