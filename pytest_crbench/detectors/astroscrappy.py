"""LA Cosmic (van Dokkum 2001) through astroscrappy, as a pytest-crbench detector.

Images reach detectors in electrons, so ``gain=1``; the read noise and the saturation
level come from the :class:`~pytest_crbench.science.exposures.Exposure` (defaults 5 e- and
70,000 e- when no exposure is given); the ignore mask (bad pixels, saturation boxes) is
passed as astroscrappy's ``inmask``, so those pixels are neither flagged nor used.

Default parameters (astroscrappy's own defaults, documented here so that the version
string pins them): ``sigclip=4.5, sigfrac=0.3, objlim=5.0, niter=4, sepmed=True,
cleantype='meanmask', fsmode='median'`` (with ``fsmode='convolve'`` also ``psfmodel``,
``psffwhm``, ``psfsize``, ``psfbeta``).  Any of them can be overridden by keyword or in
a spec string: ``astroscrappy:sigclip=5,objlim=4,sepmed=false``.

Large images: ``detect_cosmics`` holds about 56 bytes of temporaries per pixel (0.45 GB
for a 2048 × 2048 image here; 4.7 GB for a 9216 × 9232 CSST chip).  Images of more than
:data:`STRIP_PIXELS` pixels therefore run in strips of :data:`STRIP_ROWS` rows, each
with :data:`STRIP_HALO` rows of context above and below that are cut off again (LA
Cosmic is local: 2x2 subsampled Laplacian, 3-7 px median filters, 3x3 growth per
iteration).  Images up to that size, every ACS/WFC chip included, are processed whole;
the version string names the strips.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_crbench._util import parse_bool
from pytest_crbench.errors import CRBenchDetectorError
from pytest_crbench.detectors.base import Prediction, parse_options

__all__ = ["AstroscrappyDetector", "DEFAULTS", "make_detector",
           "STRIP_PIXELS", "STRIP_ROWS", "STRIP_HALO"]

#: Images with more pixels than this run in row strips (a 4096 x 4096 image does not).
STRIP_PIXELS = 4096 * 4096
#: Rows per strip and rows of context on each side of a strip.
STRIP_ROWS = 1024
STRIP_HALO = 64

#: The parameters this adapter passes to ``astroscrappy.detect_cosmics``.
DEFAULTS: dict[str, Any] = {
    "sigclip": 4.5,
    "sigfrac": 0.3,
    "objlim": 5.0,
    "niter": 4,
    "sepmed": True,
    "cleantype": "meanmask",
    "fsmode": "median",
    "psfmodel": "gauss",
    "psffwhm": 2.5,
    "psfsize": 7,
    "psfbeta": 4.765,
}
_TYPES = {"sigclip": float, "sigfrac": float, "objlim": float, "niter": int, "sepmed": bool,
          "cleantype": str, "fsmode": str, "psfmodel": str, "psffwhm": float, "psfsize": int,
          "psfbeta": float}
_CHOICES = {"cleantype": ("median", "medmask", "meanmask", "idw"),
            "fsmode": ("median", "convolve"),
            "psfmodel": ("gauss", "gaussx", "gaussy", "moffat")}
_PSF_KEYS = ("psfmodel", "psffwhm", "psfsize", "psfbeta")


def _coerce(key: str, value: Any) -> Any:
    typ = _TYPES[key]
    if typ is bool:
        if not isinstance(value, str):
            return bool(value)
        out = parse_bool(value)
        if out is None:
            raise CRBenchDetectorError(f"astroscrappy: {key} must be true or false, got {value!r}")
        return out
    try:
        out = typ(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise CRBenchDetectorError(
            f"astroscrappy: {key} must be a {typ.__name__}, got {value!r}") from None
    if key in _CHOICES and out not in _CHOICES[key]:
        raise CRBenchDetectorError(
            f"astroscrappy: {key} must be one of {', '.join(_CHOICES[key])}, got {out!r}")
    return out


class AstroscrappyDetector:
    """``astroscrappy.detect_cosmics`` with gain 1 and the exposure's noise/saturation."""

    threshold = None

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise CRBenchDetectorError(
                f"astroscrappy: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(DEFAULTS)}")
        self.params = dict(DEFAULTS)
        self.params.update({k: _coerce(k, v) for k, v in params.items()})
        for key in ("sigclip", "sigfrac", "objlim"):
            if self.params[key] <= 0:
                raise CRBenchDetectorError(f"astroscrappy: {key} must be > 0, got {self.params[key]}")
        if self.params["niter"] < 1:
            raise CRBenchDetectorError(f"astroscrappy: niter must be >= 1, got {self.params['niter']}")
        try:
            import astroscrappy
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise CRBenchDetectorError(f"astroscrappy is not installed: {exc}") from exc
        self._detect_cosmics = astroscrappy.detect_cosmics
        self.library_version = getattr(astroscrappy, "__version__", "unknown")
        shown = {k: v for k, v in self.params.items()
                 if self.params["fsmode"] == "convolve" or k not in _PSF_KEYS}
        changed = {k: v for k, v in params.items()}
        self.name = "astroscrappy" + (
            ":" + ",".join(f"{k}={self.params[k]}" for k in sorted(changed)) if changed else "")
        self.version = f"astroscrappy {self.library_version} " + " ".join(
            f"{k}={v}" for k, v in shown.items()) + " gain=1" + (
            f" strips={STRIP_ROWS}+{STRIP_HALO} above {STRIP_PIXELS / 1e6:g} Mpix")

    def __repr__(self) -> str:
        return f"AstroscrappyDetector({self.params!r})"

    def detect(self, image: np.ndarray, ignore: np.ndarray | None = None,
               exposure: Any = None) -> Prediction:
        img = np.ascontiguousarray(image, dtype=np.float32)
        if img.ndim != 2:
            raise CRBenchDetectorError(f"{self.name}: image must be 2-D, got shape {img.shape}")
        inmask = None
        if ignore is not None:
            inmask = np.ascontiguousarray(ignore, dtype=bool)
            if inmask.shape != img.shape:
                raise CRBenchDetectorError(
                    f"{self.name}: ignore mask shape {inmask.shape} differs from image {img.shape}")
        readnoise = float(getattr(exposure, "read_noise", 5.0)) if exposure is not None else 5.0
        satlevel = float(getattr(exposure, "saturation", 70000.0)) if exposure is not None else 70000.0
        p = self.params
        kwargs = dict(sigclip=p["sigclip"], sigfrac=p["sigfrac"], objlim=p["objlim"], gain=1.0,
                      readnoise=readnoise, satlevel=satlevel, niter=p["niter"], sepmed=p["sepmed"],
                      cleantype=p["cleantype"], fsmode=p["fsmode"], verbose=False)
        if p["fsmode"] == "convolve":
            kwargs.update(psfmodel=p["psfmodel"], psffwhm=p["psffwhm"], psfsize=p["psfsize"],
                          psfbeta=p["psfbeta"])
        if img.size <= STRIP_PIXELS:
            mask, cleaned = self._detect_cosmics(img, inmask=inmask, **kwargs)
        else:
            mask = np.empty(img.shape, bool)
            cleaned = np.empty(img.shape, np.float32)
            H = img.shape[0]
            for r0 in range(0, H, STRIP_ROWS):
                r1 = min(H, r0 + STRIP_ROWS)
                a0, a1 = max(0, r0 - STRIP_HALO), min(H, r1 + STRIP_HALO)
                m, c = self._detect_cosmics(
                    img[a0:a1], inmask=None if inmask is None else inmask[a0:a1], **kwargs)
                mask[r0:r1] = m[r0 - a0:r1 - a0]
                cleaned[r0:r1] = c[r0 - a0:r1 - a0]
        mask = np.asarray(mask, dtype=bool)
        if inmask is not None:
            mask &= ~inmask
        return Prediction(mask=mask, probability=None,
                          cleaned=np.asarray(cleaned, dtype=np.float32))


def make_detector(spec: str = "astroscrappy", **options: Any) -> AstroscrappyDetector:
    """Factory (entry point ``astroscrappy``).

    ``spec`` may be ``"astroscrappy"``, ``"astroscrappy:key=value,..."`` or just the
    ``"key=value,..."`` remainder (what the entry-point resolution passes); keyword
    ``options`` override the spec.  ``threshold``/``device`` are accepted and ignored
    (LA Cosmic is a binary, CPU-only detector: its ``threshold`` stays ``None``; tune
    ``sigclip``/``sigfrac``/``objlim`` instead).
    """
    options.pop("device", None)
    options.pop("threshold", None)
    text = (spec or "").strip()
    if text.lower() == "astroscrappy":
        text = ""
    elif text.lower().startswith("astroscrappy:"):
        text = text.split(":", 1)[1]
    params = parse_options(text, "astroscrappy", DEFAULTS)
    params.update(options)
    return AstroscrappyDetector(**params)
