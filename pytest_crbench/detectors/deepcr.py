"""deepCR (Zhang & Bloom 2020) as a pytest-crbench detector.

Every mask and inpainting network shipped with deepCR 0.3.1 is supported, the
registered ones and the ones that ship without a registry entry.  A *model version* is
weights + architecture + input scale (+ deepCR's mean/std normalisation for
``WFC3-UVIS``): all of it is written into :attr:`DeepCRDetector.version`, together with
the first 12 hex digits of the weight file's SHA-256, so a silent change of any of them
changes the version.

Verified here (deepCR 0.3.1, every weight file loaded into every candidate network; the
state dicts load into exactly one conv family, and the scale was chosen by scoring
synthetic ACS/WFC-like images at scales 1, 10, 100 and 1000):

=====================  ========================  =========  =====  ==========================
name                   architecture              channels   scale  deepCR registry
=====================  ========================  =========  =====  ==========================
ACS-WFC                UNet2SigmoidBatchNorm     (1,1,32)   1      mask_dict
WFC3-UVIS              UNet2Sigmoid (weight-norm) (1,1,32)  1      mask_dict (+ mean/std norm)
decam                  UNet2SigmoidBatchNorm     (1,1,32)   1      mask_dict (DECam, ADU)
example_model          UNet2SigmoidBatchNorm     (1,1,32)   100    mask_dict (toy model)
ACS-WFC-F435W          UNet2SigmoidBatchNorm     (1,1,32)   1      shipped, unregistered
ACS-WFC-F606W          UNet2SigmoidBatchNorm     (1,1,32)   1      shipped, unregistered
ACS-WFC-F814W          UNet2SigmoidBatchNorm     (1,1,32)   1      shipped, unregistered
ACS-WFC-F606W-2-4      UNet2SigmoidBatchNorm     (1,1,4)    100    shipped, unregistered
ACS-WFC-F606W-2-32     UNet2BatchNorm (inpaint)  (2,1,32)   100    inpaint_dict
ACS-WFC-F606W-3-32     UNet3BatchNorm (inpaint)  (2,1,32)   100    shipped, unregistered
=====================  ========================  =========  =====  ==========================

Inpainting scale: stock ``deepCR.clean`` feeds the inpainting network the *mask*
model's scale (1 for ``ACS-WFC``).  Both shipped inpainting networks were trained on
images divided by 100 (deepCR < 0.2 divided every input by 100; measured here: with the
true CR mask, the RMS error of the inpainted pixels against the noiseless sky is 5.6 e-
at scale 100 against 11.5 e- at scale 1 for ``-2-32``, 6.3 against 12.8 for ``-3-32``).
This adapter therefore runs each inpainting network at its own scale (100; override with
``inpaint_scale``), and the version says so.  ``engine="stock"`` reproduces deepCR's own
``clean()`` exactly, quirk included.

Inference (``engine="tiles"``, the default): the network runs in eval mode under
``torch.inference_mode()``, in channels-last memory layout (about 2x faster on CPU), on
tiles of ``patch`` × ``patch`` pixels (default 256 on CPU, 2048 on CUDA), each read with a
32-pixel halo that is cut off again.  Tile origins sit on the network's pooling grid,
so the tiled result equals the whole-image result (to float rounding) — unlike stock
``clean()``, whose non-overlapping tiles change the output along tile seams — while peak
memory stays that of one batch of tiles.  Tiles of equal shape run ``batch`` at a time
(default 1 on CPU, 4 on CUDA).  ``precision="tf32"`` (CUDA only) lets cuDNN run the
convolutions in TensorFloat-32; ``"bf16"``/``"fp16"`` run the network under
``torch.autocast`` (the probabilities are returned as float32; the speed and the mask
agreement of each with fp32 are measured in ``benchmarks/test_archive.py``); the default
``"fp32"`` is exact.
``engine="stock"`` calls ``deepCR.clean`` (segmented, ``n_jobs=1``) inside
``torch.inference_mode()``; it exists for comparison.

CPU memory allocator: every tile allocates and frees activation buffers of tens of MB;
glibc hands such blocks back to the kernel at once and page-faults them in again for
the next tile, so system time dominated deepCR's CPU time (pitfalls.md).  The first
CPU detector of a process therefore raises glibc's mmap and trim thresholds
(:func:`~pytest_crbench.detectors.torch_runtime.tune_malloc`, skipped where ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` is set, or the C library is not glibc).  With 256-pixel tiles
(288-pixel reads, ~10 MB per activation: below the 32 MB mmap ceiling) a 2048 × 2048
image took 4.7 s against 8.4 s untuned here (4 minor page faults in 25).

Ignored pixels: deepCR has no mask input.  The image is passed as is (bad and saturated
pixels included, as a deepCR user would); the scores exclude ignored pixels anyway.

torch and deepCR are imported lazily, in the constructor, never at module import.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_crbench._util import sha256_file
from pytest_crbench.errors import CRBenchDetectorError
from pytest_crbench.detectors.base import Prediction, threshold_mask
from pytest_crbench.detectors.torch_runtime import deterministic, resolve_device, tune_malloc

__all__ = [
    "DeepCRDetector",
    "ModelSpec",
    "MASK_MODELS",
    "INPAINT_MODELS",
    "mask_model_names",
    "inpaint_model_names",
    "weights_path",
    "weights_sha256",
    "PRECISIONS",
]

#: Default tile sizes.  On 2 CPU cores, small tiles stay in cache: a 2048x2048 image
#: took 3.5 s with patch 256, 4.5 s with 512, 5.3 s with 1024 (stock clean: 10.6 s);
#: peak memory grows with the tile (+0.34 / +0.54 / +0.96 GB).  With the allocator tuned
#: (:func:`tune_malloc`) 256 stays best: 4.7 s against 13-16 s for 384 and 512, whose
#: activations exceed glibc's 32 MB mmap ceiling.  On a GPU, few large tiles are best.
DEFAULT_PATCH_CPU = 256
DEFAULT_PATCH_GPU = 2048
#: Tiles per forward pass by default (equal-shaped tiles are batched).
DEFAULT_BATCH_CPU = 1
DEFAULT_BATCH_GPU = 4
#: ``precision`` values: fp32 is exact; tf32 runs the convolutions in TensorFloat-32
#: (CUDA only); bf16 and fp16 run the network under autocast.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_FP16_MAX = 65504.0

#: Receptive-field margin kept around each tile (a multiple of 4, the pooling grid of
#: the deepest network, UNet3, whose receptive radius is about 26 pixels).
HALO = 32


@dataclass(frozen=True)
class ModelSpec:
    """One shipped deepCR network: weights file stem, architecture and input scale."""

    name: str
    kind: str  # "mask" or "inpaint"
    arch: str  # class name in deepCR.unet / deepCR.unet_batchnorm
    channels: tuple[int, int, int]
    scale: float
    norm: bool = False  # deepCR's per-image mean/std normalisation (WFC3-UVIS)
    registered: bool = True  # in deepCR's own learned_models dicts
    note: str = ""
    domain: tuple[str, ...] = ()  # (INSTRUME, DETECTOR) it was trained on; () = any
    path: str | None = None  # a user's weight file (None: shipped with deepCR)

    def describe(self) -> str:
        ch = ",".join(str(c) for c in self.channels)
        norm = " norm=mean/std" if self.norm else ""
        name = f"file {os.path.basename(self.path)}" if self.path else self.name
        return f"{name} {self.arch}({ch}) scale={self.scale:g}{norm}"


_ACS_WFC = ("ACS", "WFC")

MASK_MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("ACS-WFC", "mask", "UNet2SigmoidBatchNorm", (1, 1, 32), 1, domain=_ACS_WFC,
                  note="HST ACS/WFC, F435W+F606W+F814W, electrons"),
        ModelSpec("WFC3-UVIS", "mask", "UNet2Sigmoid", (1, 1, 32), 1, norm=True,
                  domain=("WFC3", "UVIS"),
                  note="HST WFC3/UVIS; peak probabilities ~0.3-0.6: use a lower threshold"),
        ModelSpec("decam", "mask", "UNet2SigmoidBatchNorm", (1, 1, 32), 1, domain=("DECAM",),
                  note="DECam g band, ADU; many false positives on ACS images"),
        ModelSpec("example_model", "mask", "UNet2SigmoidBatchNorm", (1, 1, 32), 100,
                  note="deepCR's toy example model"),
        ModelSpec("ACS-WFC-F435W", "mask", "UNet2SigmoidBatchNorm", (1, 1, 32), 1,
                  registered=False, domain=_ACS_WFC, note="HST ACS/WFC F435W, electrons"),
        ModelSpec("ACS-WFC-F606W", "mask", "UNet2SigmoidBatchNorm", (1, 1, 32), 1,
                  registered=False, domain=_ACS_WFC, note="HST ACS/WFC F606W, electrons"),
        ModelSpec("ACS-WFC-F814W", "mask", "UNet2SigmoidBatchNorm", (1, 1, 32), 1,
                  registered=False, domain=_ACS_WFC, note="HST ACS/WFC F814W, electrons"),
        ModelSpec("ACS-WFC-F606W-2-4", "mask", "UNet2SigmoidBatchNorm", (1, 1, 4), 100,
                  registered=False, domain=_ACS_WFC, note="HST ACS/WFC F606W, 4 hidden channels, electrons/100"),
    ]
}

INPAINT_MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("ACS-WFC-F606W-2-32", "inpaint", "UNet2BatchNorm", (2, 1, 32), 100,
                  note="HST ACS/WFC F606W inpainting, electrons/100"),
        ModelSpec("ACS-WFC-F606W-3-32", "inpaint", "UNet3BatchNorm", (2, 1, 32), 100,
                  registered=False, note="HST ACS/WFC F606W inpainting, electrons/100"),
    ]
}

#: deepCR's own non-learned inpainting (5×5 median of unmasked neighbours).
MEDMASK = "medmask"


def mask_model_names() -> list[str]:
    return list(MASK_MODELS)


def inpaint_model_names() -> list[str]:
    return list(INPAINT_MODELS) + [MEDMASK]


def _lookup(table: dict[str, ModelSpec], name: str, what: str) -> ModelSpec:
    if name in table:
        return table[name]
    folded = {k.lower(): k for k in table}
    if name.lower() in folded:
        return table[folded[name.lower()]]
    valid = list(table) + ([MEDMASK] if what == "inpaint" else [])
    raise CRBenchDetectorError(
        f"unknown deepCR {what} model {name!r}; valid {what} models: {', '.join(valid)}"
    )


def _models_dir() -> str:
    """The ``learned_models`` folder deepCR installs, found without importing it."""
    spec = importlib.util.find_spec("learned_models")
    if spec is None or not spec.submodule_search_locations:
        raise CRBenchDetectorError(
            "deepCR's model weights (package 'learned_models') are not installed; "
            "install deepCR: pip install 'pytest-crbench[deepcr]'"
        )
    return list(spec.submodule_search_locations)[0]


def weights_path(spec: ModelSpec) -> str:
    if spec.path is not None:
        return spec.path
    path = os.path.join(_models_dir(), spec.kind, spec.name + ".pth")
    if not os.path.isfile(path):
        raise CRBenchDetectorError(f"deepCR weight file for {spec.kind} model {spec.name!r} "
                                   f"is missing: {path}")
    return path


_HASHES: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str) -> str:
    """Full SHA-256 of a weight file (cached on path, size and mtime)."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


_REGISTER_LOCK = threading.Lock()


def _import_deepcr():
    """Import torch, deepCR and learned_models (in that order) and register every
    shipped model in deepCR's own dicts so that ``deepCR(mask=name)`` works too."""
    try:
        import torch  # noqa: F401
        import deepCR  # noqa: F401  (must precede learned_models: circular import)
        import deepCR.model
        import deepCR.unet
        import deepCR.unet_batchnorm
        import learned_models
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CRBenchDetectorError(
            f"the deepCR detector needs torch and deepCR ({exc}); install them with "
            "pip install 'pytest-crbench[deepcr]' (on CPU machines add torch==2.13.0)"
        ) from exc
    with _REGISTER_LOCK:
        for table, target in ((MASK_MODELS, learned_models.mask_dict),
                              (INPAINT_MODELS, learned_models.inpaint_dict)):
            for spec in table.values():
                if spec.name not in target:
                    cls = _arch_class(spec.arch)
                    entry = [cls, spec.channels]
                    if spec.kind == "mask":
                        entry.append(spec.scale)
                    target[spec.name] = entry
        # deepCR.model did `from learned_models import mask_dict, inpaint_dict`: the
        # same dict objects, so the entries above are visible there as well.
    return torch, deepCR


def _arch_class(arch: str):
    import deepCR.unet
    import deepCR.unet_batchnorm

    for mod in (deepCR.unet_batchnorm, deepCR.unet):
        if hasattr(mod, arch):
            return getattr(mod, arch)
    raise CRBenchDetectorError(f"deepCR has no network class {arch!r}")  # pragma: no cover


class DeepCRDetector:
    """A deepCR mask model (optionally with an inpainting model) as a Detector.

    ``detect`` returns ``Prediction(mask=bool, probability=float32, cleaned=float32|None)``;
    ``mask`` is :func:`~pytest_crbench.detectors.base.threshold_mask` (probability >
    threshold, deepCR's strict comparison).
    """

    def __init__(self, model: str | ModelSpec = "ACS-WFC", *, threshold: float = 0.5,
                 device: str = "cpu", inpaint: str | ModelSpec | None = None,
                 patch: int | None = None, engine: str = "tiles",
                 inpaint_scale: float | None = None, batch: int | None = None,
                 precision: str = "fp32") -> None:
        # a ModelSpec comes from a user's weight file (detectors.weightfiles)
        self.mask_spec = (model if isinstance(model, ModelSpec)
                          else _lookup(MASK_MODELS, model, "mask"))
        self.model = self.mask_spec.name
        self.inpaint_spec: ModelSpec | None = None
        self.inpaint_model: str | None = None
        if isinstance(inpaint, ModelSpec):
            self.inpaint_spec = inpaint
            self.inpaint_model = inpaint.name
        elif inpaint is not None:
            if inpaint.lower() == MEDMASK:
                self.inpaint_model = MEDMASK
            else:
                self.inpaint_spec = _lookup(INPAINT_MODELS, inpaint, "inpaint")
                self.inpaint_model = self.inpaint_spec.name
        if threshold is None:
            threshold = 0.5
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise CRBenchDetectorError(f"deepCR threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        if patch is not None:
            patch = int(patch)
            if patch < 64 or patch % 4:
                raise CRBenchDetectorError(
                    f"deepCR patch must be a multiple of 4 and >= 64, got {patch}")
        if engine not in ("tiles", "stock"):
            raise CRBenchDetectorError(f"deepCR engine must be 'tiles' or 'stock', got {engine!r}")
        if engine == "stock" and (self.mask_spec.path or (self.inpaint_spec and self.inpaint_spec.path)):
            raise CRBenchDetectorError("deepCR engine='stock' runs shipped models only, not weight files")
        self.engine = engine
        precision = str(precision or "fp32").lower()
        if precision not in PRECISIONS:
            raise CRBenchDetectorError(
                f"deepCR precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision != "fp32" and engine == "stock":
            raise CRBenchDetectorError("deepCR precision other than fp32 needs engine='tiles'")
        self.precision = precision
        if batch is not None and int(batch) < 1:
            raise CRBenchDetectorError(f"deepCR batch must be >= 1, got {batch}")
        if inpaint_scale is not None and self.inpaint_spec is None:
            raise CRBenchDetectorError("deepCR inpaint_scale given without an inpainting model")
        self.inpaint_scale = (float(inpaint_scale) if inpaint_scale is not None
                              else self.inpaint_spec.scale if self.inpaint_spec else None)

        torch, deepcr_pkg = _import_deepcr()
        self._torch = torch
        self.library_version = getattr(deepcr_pkg, "__version__", "unknown")
        self.device = resolve_device(torch, device, "deepCR")
        if precision == "tf32" and not self.device.startswith("cuda"):
            raise CRBenchDetectorError(
                "deepCR precision tf32 (TensorFloat-32 convolutions) needs a CUDA device; "
                f"this detector runs on {self.device!r}: use fp32 or bf16 there")
        if patch is None:
            if engine == "stock":
                patch = 1024  # deepCR's own advice for large images
            else:
                patch = DEFAULT_PATCH_GPU if self.device.startswith("cuda") else DEFAULT_PATCH_CPU
        self.patch = patch
        on_gpu = self.device.startswith("cuda")
        self.batch = int(batch) if batch is not None else (
            DEFAULT_BATCH_GPU if on_gpu else DEFAULT_BATCH_CPU)
        if not on_gpu:
            tune_malloc()

        self._mask_path = weights_path(self.mask_spec)
        self.mask_sha256 = weights_sha256(self._mask_path)
        self.mask_net = self._load(self.mask_spec, self._mask_path)
        self.inpaint_net = None
        self.inpaint_sha256: str | None = None
        if self.inpaint_spec is not None:
            path = weights_path(self.inpaint_spec)
            self.inpaint_sha256 = weights_sha256(path)
            self.inpaint_net = self._load(self.inpaint_spec, path)
        self._stock = None

        inpaint_part = ""
        if self.inpaint_spec is not None:
            s = self.inpaint_spec
            inpaint_part = (f" + inpaint {s.describe().split(' scale=')[0]} scale={self.inpaint_scale:g} "
                            f"sha256:{self.inpaint_sha256[:12]}")
        elif self.inpaint_model == MEDMASK:
            inpaint_part = " + inpaint medmask"
        if engine == "stock":
            inpaint_part += " engine=stock"
        if precision != "fp32":
            inpaint_part += f" precision={precision}"
        self.version = f"{self.mask_spec.describe()} sha256:{self.mask_sha256[:12]}{inpaint_part}"
        #: the (instrument, detector) the mask model was trained on: data from elsewhere
        #: are reported as out of the model's domain
        self.domain = self.mask_spec.domain
        self.name = "deepcr:" + self.model + (f"+{self.inpaint_model}" if self.inpaint_model else "")

    # -- loading ---------------------------------------------------------------------
    def _load(self, spec: ModelSpec, path: str):
        torch = self._torch
        from deepCR.unet import WrappedModel

        with warnings.catch_warnings():
            # torch.nn.utils.weight_norm (WFC3-UVIS) is deprecated: FutureWarning.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            net = WrappedModel(_arch_class(spec.arch)(*spec.channels))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not any(k.startswith("module.") for k in state):  # a bare network's
                state = {"module." + k: v for k, v in state.items()}
            net.load_state_dict(state)
        except Exception as exc:
            raise CRBenchDetectorError(
                f"deepCR {spec.kind} model {spec.name!r}: weights {path} do not load into "
                f"{spec.arch}{spec.channels}: {exc}"
            ) from exc
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        # channels_last: oneDNN's NHWC convolutions run these U-Nets ~2x faster on CPU
        # (1.5 s against 3.0 s per 1088x1088 tile here); outputs agree to ~3e-7.
        return net.to(self.device, memory_format=torch.channels_last)

    def synchronize(self) -> None:
        """Wait for queued GPU work (for timing); a no-op on CPU."""
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize(self.device)

    def __repr__(self) -> str:
        return (f"DeepCRDetector({self.model!r}, threshold={self.threshold}, device={self.device!r}, "
                f"inpaint={self.inpaint_model!r}, patch={self.patch}, batch={self.batch}, "
                f"engine={self.engine!r}, precision={self.precision!r})")

    # -- inference -------------------------------------------------------------------
    def detect(self, image: np.ndarray, ignore: np.ndarray | None = None,
               exposure: Any = None) -> Prediction:
        img = np.asarray(image)
        if img.ndim != 2:
            raise CRBenchDetectorError(f"{self.name}: image must be 2-D, got shape {img.shape}")
        img = np.ascontiguousarray(img, dtype=np.float32)
        if self.engine == "stock":
            return self._detect_stock(img)
        torch = self._torch
        with torch.inference_mode(), deterministic(torch, self.device,
                                                    tf32=self.precision == "tf32"):
            x = img / np.float32(self.mask_spec.scale)
            if self.mask_spec.norm:  # as deepCR.clean: whole-image mean and std
                mean, std = x.mean(), x.std()
                x -= mean  # in place: the same float32 values, no full-frame temporary
                x /= std
            if self.precision == "fp16":
                peak = float(np.abs(x).max(initial=0.0))
                if peak > _FP16_MAX:
                    raise CRBenchDetectorError(
                        f"{self.name}: precision fp16 cannot hold this image: the network "
                        f"input reaches {peak:.0f} (scale {self.mask_spec.scale:g}) > "
                        f"{_FP16_MAX:.0f}, the largest float16, which turns the "
                        "probabilities into NaN; use --crbench-precision bf16 or fp32")
            prob = self._run_tiled(self.mask_net, x[None])
            del x
            mask = threshold_mask(prob, self.threshold)
            cleaned = None
            if self.inpaint_net is not None:
                inp = np.empty((2,) + img.shape, np.float32)
                inp[1] = mask
                np.divide(img, np.float32(self.inpaint_scale), out=inp[0])
                inp[0] *= 1.0 - inp[1]
                out = self._run_tiled(self.inpaint_net, inp)
                del inp
                cleaned = img.copy()
                cleaned[mask] = out[mask] * np.float32(self.inpaint_scale)
            elif self.inpaint_model == MEDMASK:
                from deepCR.util import medmask

                cleaned = medmask(img, mask.astype(np.float32)).astype(np.float32)
        return Prediction(mask=mask, probability=prob, cleaned=cleaned)

    def _run_tiled(self, net, x: np.ndarray) -> np.ndarray:
        """Run ``net`` on a (C, H, W) float32 array; return the (H, W) float32 output.

        The array is zero-padded at the top/left to a multiple of 4 (as deepCR does).
        Tiles of ``patch`` pixels, read with a ``HALO`` margin, start on multiples of 4,
        so each output pixel equals the whole-image output.  Tiles of one read shape
        (all interior tiles share one) go through the network ``batch`` at a time.
        """
        torch = self._torch
        c, h, w = x.shape
        py, px = -h % 4, -w % 4
        if py or px:
            x = np.pad(x, ((0, 0), (py, 0), (px, 0)))
        H, W = x.shape[1:]
        out = np.empty((H, W), dtype=np.float32)
        p = self.patch
        by_shape: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        for y0 in range(0, H, p):
            y1 = min(y0 + p, H)
            a0, a1 = max(0, y0 - HALO), min(H, y1 + HALO)
            for x0 in range(0, W, p):
                x1 = min(x0 + p, W)
                b0, b1 = max(0, x0 - HALO), min(W, x1 + HALO)
                by_shape.setdefault((a1 - a0, b1 - b0), []).append((y0, y1, a0, x0, x1, b0))
        on_gpu = self.device != "cpu"
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        device_type = "cuda" if on_gpu else "cpu"
        for (th, tw), tiles in by_shape.items():
            for k in range(0, len(tiles), self.batch):
                chunk = tiles[k:k + self.batch]
                t = torch.from_numpy(np.stack([x[:, a0:a0 + th, b0:b0 + tw]
                                               for _, _, a0, _, _, b0 in chunk]))
                if on_gpu:
                    t = t.pin_memory().to(self.device, non_blocking=True)
                t = t.contiguous(memory_format=torch.channels_last)
                if dtype is None:
                    r = net(t)
                else:
                    with torch.autocast(device_type=device_type, dtype=dtype):
                        r = net(t)
                r = r[:, 0].float()
                r = r.cpu().numpy() if on_gpu else r.numpy()
                for j, (y0, y1, a0, x0, x1, b0) in enumerate(chunk):
                    out[y0:y1, x0:x1] = r[j, y0 - a0:y1 - a0, x0 - b0:x1 - b0]
        return out[py:, px:]

    def _detect_stock(self, img: np.ndarray) -> Prediction:
        torch = self._torch
        if self._stock is None:
            from deepCR import deepCR as DeepCR

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", UserWarning)
                inp = self.inpaint_model if self.inpaint_spec is not None else None
                self._stock = DeepCR(mask=self.model, inpaint=inp,
                                     device="GPU" if self.device.startswith("cuda") else "CPU")
        mdl = self._stock
        want_clean = self.inpaint_model is not None
        with torch.inference_mode():
            prob = mdl.clean(img, threshold=self.threshold, inpaint=False, binary=False,
                             segment=True, patch=self.patch, n_jobs=1)
            cleaned = None
            if want_clean:
                _, cleaned = mdl.clean(img, threshold=self.threshold, inpaint=True, binary=True,
                                       segment=True, patch=self.patch, n_jobs=1)
                cleaned = np.asarray(cleaned, dtype=np.float32)
        prob = np.asarray(prob, dtype=np.float32)
        return Prediction(mask=threshold_mask(prob, self.threshold), probability=prob,
                          cleaned=cleaned)
