"""Resolve a detector spec string to a :class:`~pytest_crbench.detectors.base.Detector`.

Accepted specs, tried in this order:

``deepcr`` / ``deepcr:<mask>`` / ``deepcr:<mask>+<inpaint>``
    a shipped deepCR model, e.g. ``deepcr:ACS-WFC``, ``deepcr:ACS-WFC-F606W-2-4``,
    ``deepcr:ACS-WFC+ACS-WFC-F606W-2-32`` (bare ``deepcr`` = ``deepcr:ACS-WFC``).
    ``<mask>`` / ``<inpaint>`` may be weight files (a path: contains ``/`` or ends in
    ``.pth``), run by the same engine (see :mod:`pytest_crbench.detectors.weightfiles`);
    options follow after commas: ``deepcr:/m/mine.pth,scale=1,patch=256``
    (:data:`DEEPCR_OPTIONS`).
``astroscrappy`` / ``astroscrappy:key=value,...``
    LA Cosmic with the given parameters.
``cosmicconn`` / ``cosmicconn:<model>[,patch=N]``
    Cosmic-CoNN with a model its wheel ships (default ``HST_ACS_WFC``).
``rhoads`` / ``rhoads:key=value,...``, ``pych`` / ``pych:key=value,...``
    the classical single-image methods of Rhoads (2000) and Pych (2004).
``<name>`` / ``<name>:<rest>``
    a factory another package registers in the entry-point group
    ``pytest_crbench.detectors``; it is called with ``<rest>`` (``""`` if none).
``package.module:factory``
    an import path; ``factory`` (a callable, dotted attributes allowed) is called with
    no positional argument.

Factories get ``threshold=`` and ``device=`` keyword arguments when their signature
accepts them.  Whatever they return must have ``name``, ``version``, ``threshold`` and a
callable ``detect``; anything else raises :class:`CRBenchDetectorError` listing what is
missing.  Importing this module imports neither torch nor deepCR.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from typing import Any, Callable

from pytest_crbench.errors import CRBenchDetectorError
from pytest_crbench.detectors.base import Detector

__all__ = ["BUILTIN_FACTORIES", "DEEPCR_OPTIONS", "ENTRY_POINT_GROUP", "SPEC_FORMS", "available_detectors",
           "check_spec", "detector_id", "load_detector", "validate_detector"]

ENTRY_POINT_GROUP = "pytest_crbench.detectors"

SPEC_FORMS = (
    "deepcr:<mask model>  (e.g. deepcr:ACS-WFC)",
    "deepcr:<mask model>+<inpaint model>  (e.g. deepcr:ACS-WFC+ACS-WFC-F606W-2-32)",
    "deepcr:<weights.pth>[+<inpaint.pth>][,scale=S,norm=B,inpaint_scale=S,patch=N]  "
    "(a deepCR weight file; e.g. deepcr:/models/mine.pth,scale=1)",
    "astroscrappy  or  astroscrappy:key=value,...  (e.g. astroscrappy:sigclip=5,objlim=4)",
    "cosmicconn[:<model>][,patch=N]  (Cosmic-CoNN; models HST_ACS_WFC, ground_imaging, NRES)",
    "rhoads[:key=value,...]  (Rhoads 2000 PSF filter; fwhm, sigma, niter, grow, radius)",
    "pych[:key=value,...]  (Pych 2004 histogram method; box, gap, niter, votes, min_pixels)",
    f"<name>[:<args>]  for a detector registered in the entry-point group {ENTRY_POINT_GROUP!r}",
    "package.module:factory  (an importable factory returning a detector)",
)

#: Detectors built into pytest-crbench besides deepCR: spec head → factory, called with
#: what follows ``<head>:`` (resolved here, not through entry points).
BUILTIN_FACTORIES = {
    "astroscrappy": "pytest_crbench.detectors.astroscrappy:make_detector",
    "cosmicconn": "pytest_crbench.detectors.cosmicconn:make_detector",
    "rhoads": "pytest_crbench.detectors.rhoads:make_detector",
    "pych": "pytest_crbench.detectors.pych:make_detector",
}

#: Attribute set on every detector load_detector returns: the spec it was loaded from.
SPEC_ATTR = "crbench_spec"

_REQUIRED = ("name", "version", "threshold")


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # first on sys.path wins, as importlib does
    return found


def available_detectors() -> list[str]:
    """Every spec that resolves without arguments: each deepCR mask model, the
    built-in detectors (:data:`BUILTIN_FACTORIES`) and each entry point of the ``pytest_crbench.detectors`` group."""
    from pytest_crbench.detectors.deepcr import mask_model_names

    names = [f"deepcr:{m}" for m in mask_model_names()] + list(BUILTIN_FACTORIES)
    for name in sorted(_entry_points()):
        if name not in names:
            names.append(name)
    return names


def validate_detector(obj: Any, where: str) -> Detector:
    """Check that ``obj`` satisfies the Detector protocol; raise listing what is missing."""
    missing = [attr for attr in _REQUIRED if not hasattr(obj, attr)]
    if not callable(getattr(obj, "detect", None)):
        missing.append("detect() method")
    if missing:
        raise CRBenchDetectorError(
            f"detector {where!r} returned {type(obj).__name__} object which does not satisfy the "
            f"Detector protocol: missing {', '.join(missing)} (needs name: str, version: str, "
            "threshold: float | None and detect(image, ignore, exposure))"
        )
    bad = [attr for attr in ("name", "version") if not isinstance(getattr(obj, attr), str)]
    if bad:
        raise CRBenchDetectorError(
            f"detector {where!r}: {' and '.join(bad)} must be str, got "
            + ", ".join(f"{a}={getattr(obj, a)!r}" for a in bad))
    thr = getattr(obj, "threshold")
    if thr is not None and not isinstance(thr, (int, float)):
        raise CRBenchDetectorError(f"detector {where!r}: threshold must be a number or None, got {thr!r}")
    return obj


def _call_factory(factory: Callable[..., Any], args: tuple, *, threshold: float | None,
                  device: str, where: str) -> Any:
    try:
        sig = inspect.signature(factory)
        params = sig.parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepts = {k for k in ("threshold", "device")
                   if var_kw or (k in params and params[k].kind in (
                       inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))}
    except (TypeError, ValueError):  # builtins without a signature
        accepts = set()
    kwargs: dict[str, Any] = {}
    if "threshold" in accepts and threshold is not None:
        kwargs["threshold"] = threshold
    if "device" in accepts:
        kwargs["device"] = device
    try:
        det = factory(*args, **kwargs)
    except CRBenchDetectorError:
        raise
    except Exception as exc:
        raise CRBenchDetectorError(
            f"detector factory {where!r} raised {type(exc).__name__}: {exc}") from exc
    validate_detector(det, where)
    if threshold is not None and "threshold" not in accepts and det.threshold != threshold:
        try:
            det.threshold = threshold
        except Exception as exc:
            raise CRBenchDetectorError(
                f"detector {where!r}: its factory takes no threshold and its threshold attribute "
                f"cannot be set to {threshold}: {exc}") from exc
    return det


def _import_factory(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CRBenchDetectorError(
            f"detector {spec!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CRBenchDetectorError(
                f"detector {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise CRBenchDetectorError(f"detector {spec!r}: {attr!r} is not callable")
    return obj


def _unknown(spec: str, why: str = "") -> CRBenchDetectorError:
    forms = "\n  ".join(SPEC_FORMS)
    avail = ", ".join(available_detectors())
    return CRBenchDetectorError(
        f"unknown detector spec {spec!r}{why}. Accepted forms:\n  {forms}\n"
        f"Available names: {avail}")


#: Options of a deepcr spec after the model names: ``deepcr:<mask>[+<inpaint>],key=value``.
DEEPCR_OPTIONS = {
    "scale": "input scale of a mask weight file (image / scale is fed to the network)",
    "norm": "true: mean/std-normalise the input (as WFC3-UVIS) — weight files only",
    "inpaint_scale": "input scale of the inpainting network",
    "patch": "tile size of the inference engine (multiple of 4, >= 64)",
}


def _deepcr_options(spec: str, rest: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``<models>,key=value,...`` into the model part and the options."""
    models, *pieces = (rest or "ACS-WFC").split(",")
    opts = []
    for piece in pieces:
        key, eq, value = (p.strip() for p in piece.partition("="))
        if not eq or key not in DEEPCR_OPTIONS or not value:
            raise CRBenchDetectorError(
                f"detector {spec!r}: bad deepcr option {piece.strip()!r}; options are "
                + "; ".join(f"{k}= ({v})" for k, v in DEEPCR_OPTIONS.items()))
        opts.append((key, value))
    return models.strip() or "ACS-WFC", opts


def _deepcr_arguments(spec: str, rest: str) -> dict[str, Any]:
    """DeepCRDetector keyword arguments for ``deepcr:<rest>``; weight files are read
    (and checked) here, so a bad file fails with one error naming it."""
    from pytest_crbench.detectors.weightfiles import is_weight_path, model_from_file

    models, opts = _deepcr_options(spec, rest)
    model, plus, inpaint = models.partition("+")
    model, inpaint = model.strip(), inpaint.strip()
    if not model or (plus and not inpaint):
        raise _unknown(spec, " (deepcr needs deepcr:<mask> or deepcr:<mask>+<inpaint>)")
    values: dict[str, Any] = {}
    for key, value in opts:
        if key == "norm":
            low = value.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise CRBenchDetectorError(f"detector {spec!r}: norm must be true or false, got {value!r}")
            values[key] = low in ("true", "1", "yes")
            continue
        try:
            values[key] = int(value) if key == "patch" else float(value)
        except ValueError:
            raise CRBenchDetectorError(
                f"detector {spec!r}: {key} must be a number, got {value!r}") from None
    mask_file = is_weight_path(model)
    if not mask_file and ("scale" in values or "norm" in values):
        raise CRBenchDetectorError(
            f"detector {spec!r}: scale= and norm= apply to weight files only; a shipped "
            f"model has its own (pytest_crbench.detectors.deepcr.MASK_MODELS)")
    kwargs: dict[str, Any] = {"patch": values.get("patch"),
                              "inpaint_scale": values.get("inpaint_scale")}
    kwargs["model"] = (model_from_file(model, "mask", scale=values.get("scale"),
                                       norm=values.get("norm")) if mask_file else model)
    if inpaint and is_weight_path(inpaint):
        kwargs["inpaint"] = model_from_file(inpaint, "inpaint", scale=values.get("inpaint_scale"))
    else:
        kwargs["inpaint"] = inpaint or None
    return kwargs


def check_spec(spec: str) -> None:
    """Check a spec without running anything heavy: its form, its options, and any
    weight file it names.  Raises :class:`CRBenchDetectorError` (the plugin turns it
    into one usage error at start-up, instead of one failure per test item)."""
    if not isinstance(spec, str) or not spec.strip():
        raise _unknown(str(spec), " (empty)")
    head, sep, rest = spec.strip().partition(":")
    low = head.lower()
    if low == "deepcr":
        from pytest_crbench.detectors.deepcr import (INPAINT_MODELS, MASK_MODELS, MEDMASK,
                                                     _lookup)

        kwargs = _deepcr_arguments(spec, rest)
        if isinstance(kwargs["model"], str):
            _lookup(MASK_MODELS, kwargs["model"], "mask")
        if isinstance(kwargs["inpaint"], str) and kwargs["inpaint"].lower() != MEDMASK:
            _lookup(INPAINT_MODELS, kwargs["inpaint"], "inpaint")
    elif low == "cosmicconn":
        from pytest_crbench.detectors.cosmicconn import parse_spec

        parse_spec(rest)  # the network itself is loaded when first needed
    elif low in BUILTIN_FACTORIES:
        _import_factory(BUILTIN_FACTORIES[low])(rest)
    elif head in _entry_points():
        return
    elif not (sep and rest and all(p.isidentifier() for p in head.split("."))
              and all(p.isidentifier() for p in rest.split("."))):
        raise _unknown(spec)


def load_detector(spec: str, *, threshold: float | None = None, device: str = "cpu",
                  precision: str = "fp32") -> Detector:
    """Build the detector a spec string names (see the module docstring for the forms)."""
    if not isinstance(spec, str) or not spec.strip():
        raise _unknown(str(spec), " (empty)")
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    low = head.lower()

    if low == "deepcr":
        from pytest_crbench.detectors.deepcr import DeepCRDetector

        kwargs = _deepcr_arguments(spec, rest)
        det = DeepCRDetector(threshold=0.5 if threshold is None else threshold,
                             device=device, precision=precision, **kwargs)
        canonical = det.name + "".join(f",{k}={v}" for k, v in _deepcr_options(spec, rest)[1])
    elif low in BUILTIN_FACTORIES:
        factory = _import_factory(BUILTIN_FACTORIES[low])
        det = _call_factory(factory, (rest,), threshold=threshold, device=device, where=spec)
        canonical = spec
    else:
        eps = _entry_points()
        if head in eps:
            try:
                factory = eps[head].load()
            except Exception as exc:
                raise CRBenchDetectorError(
                    f"detector {spec!r}: entry point {head!r} ({eps[head].value}) of group "
                    f"{ENTRY_POINT_GROUP!r} failed to load: {type(exc).__name__}: {exc}") from exc
            det = _call_factory(factory, (rest,), threshold=threshold, device=device, where=spec)
        elif sep and rest and all(p.isidentifier() for p in head.split(".")) \
                and all(p.isidentifier() for p in rest.split(".")):
            factory = _import_factory(spec)
            det = _call_factory(factory, (), threshold=threshold, device=device, where=spec)
        else:
            raise _unknown(spec)
        canonical = spec
    try:
        setattr(det, SPEC_ATTR, canonical)
    except Exception:  # slots or frozen: detector_id falls back on .name
        pass
    return det


def detector_id(det: Any) -> str:
    """A stable name for reports: the spec the detector was loaded from, else its name."""
    spec = getattr(det, SPEC_ATTR, None)
    if isinstance(spec, str) and spec:
        return spec
    name = getattr(det, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(det).__name__
