"""Every pytest-crbench option, and the one place where each is resolved.

An option ``name`` exists as the flag ``--crbench-<name>`` (dashes), as the key
``<name>`` (underscores) of the ``[tool.crbench]`` table in ``pyproject.toml`` and as the
pytest ini key ``crbench_<name>``.  Precedence: flag > ``[tool.crbench]`` > ini > default.
Paths in ``[tool.crbench]`` or the ini file are relative to the file they are written
in; paths on the command line are relative to the current directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pytest_crbench._util import parse_bool, read_toml
from pytest_crbench.errors import CRBenchConfigError

__all__ = ["DEFAULT_MODELS", "DEFAULT_DATASETS", "DEVICES", "FILL_METHODS", "Option",
           "OPTIONS", "OPTIONS_BY_NAME", "Settings", "read_tool_table", "make_settings",
           "resolve"]

DEFAULT_MODELS = ("deepcr:ACS-WFC", "astroscrappy")
DEFAULT_DATASETS = ("sim",)
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # = detectors.deepcr.PRECISIONS (tested)
REFERENCE_RULES = ("astrodrizzle", "noise")  # = science.reference.REFERENCE_RULES (tested)
FILL_METHODS = ("median", "idw")


#: A comma-separated piece that continues the previous item's options: ``key=value``.
_OPTION_PIECE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def split_specs(text: str) -> list[str]:
    """Split a comma- or newline-separated list of specs, keeping spec options whole.

    A spec may carry options after a colon, themselves comma-separated
    (``astroscrappy:sigclip=4.5,objlim=5``): a piece that looks like ``key=value`` and
    follows an item with a ``:`` or ``@`` continues that item instead of starting a new
    one.  ``"deepcr:ACS-WFC,astroscrappy:sigclip=4.5,objlim=5"`` →
    ``["deepcr:ACS-WFC", "astroscrappy:sigclip=4.5,objlim=5"]``.
    """
    items: list[str] = []
    for line in text.splitlines():
        continuing = False
        for piece in line.split(","):
            piece = piece.strip()
            if not piece:
                continue
            if continuing and _OPTION_PIECE.match(piece):
                items[-1] += "," + piece
                continue
            items.append(piece)
            continuing = ":" in piece or "@" in piece
    return items


def _list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        items = split_specs(value)
    elif isinstance(value, (list, tuple)):
        items = []
        for v in value:
            items.extend(_list(v, what))
    else:
        raise CRBenchConfigError(f"{what}: expected a string or a list of strings, got {value!r}")
    return [v for v in items if v]


def _default_ks() -> list[int]:
    """The paper's thresholds (:data:`pytest_crbench.science.regions.DEFAULT_KS`), read only
    when the option is resolved: the science modules are not imported at plugin load."""
    from pytest_crbench.science.regions import DEFAULT_KS

    return list(DEFAULT_KS)


def _ks(value: Any, what: str) -> list[int]:
    raw = value if isinstance(value, (list, tuple)) else _list(str(value), what)
    out = []
    for v in raw:
        try:
            k = float(v)
        except (TypeError, ValueError):
            raise CRBenchConfigError(f"{what}: {v!r} is not a number") from None
        if k <= 0 or not k.is_integer() or k > 32767:
            raise CRBenchConfigError(f"{what}: thresholds must be integers from 1 to 32767, got {v!r}")
        out.append(int(k))
    if not out:
        raise CRBenchConfigError(f"{what}: at least one threshold k is needed")
    return sorted(set(out))


def _float_or_none(value: Any, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CRBenchConfigError(f"{what}: expected a number, got {value!r}") from None


def _unit_interval(value: Any, what: str) -> float | None:
    v = _float_or_none(value, what)
    if v is not None and not 0 <= v <= 1:
        raise CRBenchConfigError(f"{what}: expected a number from 0 to 1, got {value!r}")
    return v


def _positive(value: Any, what: str) -> float | None:
    v = _float_or_none(value, what)
    if v is not None and v <= 0:
        raise CRBenchConfigError(f"{what}: expected a number > 0, got {value!r}")
    return v


def _open_unit(value: Any, what: str) -> float:
    v = _float_or_none(value, what)
    if v is None or not 0 < v < 1:
        raise CRBenchConfigError(f"{what}: expected a number between 0 and 1 (exclusive), "
                                 f"got {value!r}")
    return v


def _replicates(value: Any, what: str) -> int:
    v = _count(0)(value, what)
    if v < 100:
        raise CRBenchConfigError(f"{what}: expected at least 100 replicates, got {value!r}")
    return v


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    """A validator of one of ``choices`` (case and surrounding blanks ignored)."""
    def check(value: Any, what: str) -> str:
        v = str(value).strip().lower()
        if v not in choices:
            raise CRBenchConfigError(
                f"{what}: expected one of {', '.join(choices)}, got {value!r}")
        return v

    return check


_device, _precision = _choice(DEVICES), _choice(PRECISIONS)
_fill_method, _reference_rule = _choice(FILL_METHODS), _choice(REFERENCE_RULES)


def _scheduler(value: Any, what: str) -> str | None:
    """``local:N`` (a LocalCluster of N worker processes) or a scheduler address."""
    if value is None or value == "":
        return None
    v = str(value).strip()
    if v.startswith("local:"):
        n = v[len("local:"):]
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise CRBenchConfigError(
                f"{what}: local:N needs N workers from 1 to 256, got {value!r}")
        return f"local:{int(n)}"
    if "://" in v and v.split("://", 1)[1]:
        return v
    raise CRBenchConfigError(
        f"{what}: expected local:N or a Dask scheduler address such as "
        f"tcp://host:8786, got {value!r}")


def _number_pair(value: Any, what: str) -> tuple[float, float]:
    from pytest_crbench.science.drizcr import parse_pair

    return parse_pair(value, what)


def _count(minimum: int) -> Callable[[Any, str], int]:
    def convert(value: Any, what: str) -> int:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise CRBenchConfigError(f"{what}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not v.is_integer() or v < minimum:
            raise CRBenchConfigError(f"{what}: expected an integer >= {minimum}, got {value!r}")
        return int(v)
    return convert


def _bool(value: Any, what: str) -> bool:
    out = parse_bool(value)
    if out is None:
        raise CRBenchConfigError(f"{what}: expected true or false, got {value!r}")
    return out


def _str(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CRBenchConfigError(f"{what}: expected a string, got {value!r}")
    return value


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    default: Any  # the value, or a callable returning it (read when resolving)
    convert: Callable[[Any, str], Any]
    repeat: bool = False  # flag may be given several times (append)
    path: bool = False  # a file or folder path
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--crbench-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "crbench_" + self.name

    def argparse_kwargs(self, dest: str) -> dict[str, Any]:
        """Keyword arguments of ``add_argument``/``addoption`` for this option (a boolean
        is a bare flag; every default is None, so "not given" is seen by :func:`resolve`)."""
        kwargs: dict[str, Any] = dict(dest=dest, default=None, help=self.help)
        if self.convert.__name__ == "_bool":
            kwargs.update(action="store_const", const=True)
        else:
            kwargs.update(action="append" if self.repeat else "store", metavar=self.metavar)
        return kwargs


OPTIONS: tuple[Option, ...] = (
    Option("model", "detector to benchmark: deepcr:<model>, astroscrappy, package.module:factory "
           "or an entry-point name (repeatable; default: deepcr:ACS-WFC and astroscrappy)",
           list(DEFAULT_MODELS), _list, repeat=True, metavar="SPEC"),
    Option("dataset", "dataset to evaluate on (repeatable; default: sim, the embedded "
           "simulated ACS/WFC F606W data; sim@seed=N is an independent draw of it)",
           list(DEFAULT_DATASETS), _list, repeat=True,
           metavar="NAME"),
    Option("k", "star-region thresholds in units of the background RMS, comma-separated "
           "(default: 3,5,10,20,40,80,160)", _default_ks, _ks, metavar="K,K,..."),
    Option("reference", "how reference cosmic-ray masks are built: astrodrizzle "
           "(AstroDrizzle's driz_cr rule, the paper's: |exposure - model| > scale x "
           "derivative of the model + snr x noise) or noise (the derivative term left out, "
           "one-sided, the model's own noise included) (default: astrodrizzle)",
           "astrodrizzle", _reference_rule, metavar="RULE"),
    Option("reference_snr", "the two signal-to-noise thresholds of the reference rule, "
           "first pass and 3x3 neighbours (default: \"5.0 1.5\", the paper's)", (5.0, 1.5),
           _number_pair, metavar="\"S1 S2\""),
    Option("reference_scale", "the two multipliers of the model's derivative in the "
           "astrodrizzle rule (default: \"1.2 0.7\", AstroDrizzle's)", (1.2, 0.7),
           _number_pair, metavar="\"M1 M2\""),
    Option("reference_grow", "astrodrizzle rule: side of the box every flagged pixel is "
           "grown by, 1 = none (AstroDrizzle's driz_cr_grow; default: 1)", 1, _count(1),
           metavar="N"),
    Option("reference_ctegrow", "astrodrizzle rule: length in pixels of the CTE tail "
           "flagged along the readout direction, 0 = none (driz_cr_ctegrow; default: 0)",
           0, _count(0), metavar="N"),
    Option("truth_snr", "where exposures carry CRTRUTH (simulated data): a pixel is a "
           "true cosmic ray when its injected charge exceeds this many times its noise; "
           "smaller non-zero charge is left out of both classes (default: 5)", 5.0,
           _positive, metavar="N"),
    Option("threshold", "probability threshold for detectors that return probabilities "
           "(default: the detector's own, 0.5 for deepCR)", None, _unit_interval,
           metavar="P"),
    Option("device", "where neural detectors run: cpu, cuda or auto (default: cpu)", "cpu",
           _device, metavar="DEVICE"),
    Option("precision", "arithmetic of neural detectors: fp32 (exact), tf32 (CUDA only: "
           "TensorFloat-32 convolutions), bf16 or fp16 (torch.autocast); speed and mask "
           "agreement with fp32 are measured in benchmarks/; fp16 refuses images beyond "
           "the float16 range (default: fp32)", "fp32", _precision,
           metavar="P"),
    Option("scheduler", "evaluate on a Dask cluster: local:N starts a LocalCluster of N "
           "worker processes, tcp://host:port joins a running scheduler; the per-exposure "
           "work runs on the workers and only small records come back (default: in this "
           "process)", None, _scheduler, metavar="ADDRESS"),
    Option("floors", "TOML file of score floors to assert", None, _str, path=True,
           metavar="PATH"),
    Option("generate_floors", "write a floors TOML from this run to PATH: floors are the "
           "one-sided lower bootstrap bounds of the scores, ceilings the upper bounds "
           "(see --crbench-floors-confidence)", None, _str, path=True, metavar="PATH"),
    Option("floors_confidence", "one-sided confidence of the floors written by "
           "--crbench-generate-floors: a floor is the lower bootstrap bound of the score, a "
           "ceiling the upper bound (default: 0.99)", 0.99, _open_unit, metavar="C"),
    Option("floors_min_positives", "no generated floor for a pixel score resting on fewer "
           "reference CR pixels (recall) or flagged pixels (precision) than this "
           "(default: 100)", 100, _count(0), metavar="N"),
    Option("floors_min_stars", "no generated photometric limit for a size bin with fewer "
           "contaminated stars than this (default: 20)", 20, _count(0), metavar="N"),
    Option("baseline", "detector the others are compared with, run in the same session on "
           "the same exposures: adds the non-inferiority items "
           "crbench::<det>::<dataset>::<region>::<metric>::vs::<baseline>", None, _str,
           metavar="SPEC"),
    Option("max_drop", "non-inferiority tolerance: a comparison item fails when the whole "
           "interval of candidate - baseline lies below -M (default: 0.02)", 0.02,
           _unit_interval, metavar="M"),
    Option("bootstrap_replicates", "bootstrap replicates behind every interval "
           "(default: 1000)", 1000, _replicates, metavar="N"),
    Option("bootstrap_seed", "seed of the bootstrap resampling (default: 0)", 0, _count(0),
           metavar="SEED"),
    Option("confidence", "two-sided confidence level of the score intervals and of the "
           "comparison verdicts (default: 0.95)", 0.95, _open_unit, metavar="C"),
    Option("json", "write the results (schema crbench-results/3) to PATH", None, _str,
           path=True, metavar="PATH"),
    Option("report", "write report.html, report.md and figures/ (Table 1, photometry, "
           "CR density, stability, failure gallery) into DIR", None, _str, path=True,
           metavar="DIR"),
    Option("fill_method", "how the masked pixels of a mask-only detector are filled "
           "before photometry, the same for every detector of a run: idw (inverse-"
           "distance weighted mean of the usable 5x5 neighbours) or median (their "
           "median).  Detectors that return their own cleaned image (astroscrappy, "
           "deepCR with an inpaint model) keep it.  Default idw: with a perfect mask it "
           "biases star fluxes far less than the median, which cannot restore a star's "
           "peak (measured on sim: see the README)", "idw", _fill_method,
           metavar="METHOD"),
    Option("anomalous_level", "fraction of anomalous stars (per size bin) for which the "
           "CR-density fit gives the longest allowed exposure time (default: 0.1)", 0.1,
           _unit_interval, metavar="F"),
    Option("save_masks", "write per detector/dataset/exposure FITS masks (REFMASK, IGNORE, "
           "PRED, REGION) into DIR", None, _str, path=True, metavar="DIR"),
    Option("data_dir", "data cache folder (default: $CRBENCH_DATA_DIR, else the user "
           "cache folder)", None, _str, path=True, metavar="DIR"),
    Option("offline", "never touch the network: datasets must already be cached", False,
           _bool, metavar="BOOL"),
    Option("benchmark", "add the inference benchmark (pytest-benchmark) of every "
           "configured detector and dataset: items crbench-benchmark::test_inference_time"
           "[<spec>-<dataset>], named the same across runs and model versions (the version "
           "is in extra_info)", False, _bool, metavar="BOOL"),
    Option("lock_timeout", "seconds to wait for a data-cache lock held by another process "
           "before giving up with an error naming the lock file and its holder (default: "
           "600)", 600.0, _positive, metavar="SECONDS"),
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass
class Settings:
    """The resolved options of one run, plus where each value came from."""

    model: list[str]
    dataset: list[str]
    k: list[int]
    reference: str
    reference_snr: tuple[float, float]
    reference_scale: tuple[float, float]
    reference_grow: int
    reference_ctegrow: int
    truth_snr: float
    threshold: float | None
    device: str
    precision: str
    scheduler: str | None
    floors: Path | None
    generate_floors: Path | None
    floors_confidence: float
    floors_min_positives: int
    floors_min_stars: int
    baseline: str | None
    max_drop: float
    bootstrap_replicates: int
    bootstrap_seed: int
    confidence: float
    json: Path | None
    report: Path | None
    fill_method: str
    anomalous_level: float
    save_masks: Path | None
    data_dir: Path | None
    offline: bool
    benchmark: bool
    lock_timeout: float
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def detectors(self) -> list[str]:
        """Every detector this run evaluates: the configured ones, then the baseline of
        ``--crbench-baseline`` when it is not among them."""
        extra = [self.baseline] if self.baseline and self.baseline not in self.model else []
        return list(self.model) + extra

    def reference_config(self):
        """The :class:`~pytest_crbench.science.reference.ReferenceConfig` of this run."""
        from pytest_crbench.science.reference import ReferenceConfig

        return ReferenceConfig(rule=self.reference, snr=self.reference_snr,
                               scale=self.reference_scale, grow=self.reference_grow,
                               ctegrow=self.reference_ctegrow)
    def bootstrap(self):
        """The :class:`~pytest_crbench.science.bootstrap.BootstrapConfig` of the run."""
        from pytest_crbench.science.bootstrap import BootstrapConfig

        return BootstrapConfig(self.bootstrap_replicates, self.bootstrap_seed, self.confidence)

    def as_dict(self) -> dict[str, Any]:
        return {o.name: (str(getattr(self, o.name)) if isinstance(getattr(self, o.name), Path)
                         else getattr(self, o.name)) for o in OPTIONS}


def _shown(default: Any) -> str:
    if callable(default):
        default = default()
    if isinstance(default, (list, tuple)):
        return ",".join(str(v) for v in default)
    return "none" if default is None else str(default)


def check_output_paths(settings: "Settings") -> None:
    """Every output path can be written, before the benchmark runs: a file option must
    not name a folder, a folder option not a file, and the nearest existing parent must
    be a writable folder.  Errors name the option (where it was set) and the path."""
    kinds = {"json": "file", "generate_floors": "file", "report": "folder",
             "save_masks": "folder"}
    for name, kind in kinds.items():
        path = getattr(settings, name)
        if path is None:
            continue
        where = settings.origin.get(name, OPTIONS_BY_NAME[name].flag)
        if kind == "file" and path.is_dir():
            raise CRBenchConfigError(f"{where}: {path} is a folder; expected a file path")
        if kind == "folder" and path.exists() and not path.is_dir():
            raise CRBenchConfigError(f"{where}: {path} is a file; expected a folder")
        parent = path if kind == "folder" and path.is_dir() else path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise CRBenchConfigError(
                f"{where}: cannot write {path}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CRBenchConfigError(f"{where}: cannot write {path}: {parent} is not writable")
        if path.exists() and not os.access(path, os.W_OK):
            raise CRBenchConfigError(f"{where}: cannot write {path}: it is read-only")


def read_tool_table(pyproject: Path | None) -> dict[str, Any]:
    """The ``[tool.crbench]`` table of ``pyproject`` ({} if there is none)."""
    if pyproject is None or not pyproject.is_file():
        return {}
    data = read_toml(pyproject, "project file")
    table = data.get("tool", {}).get("crbench", {})
    if not isinstance(table, dict):
        raise CRBenchConfigError(f"{pyproject}: [tool.crbench] must be a table")
    unknown = sorted(set(table) - set(OPTIONS_BY_NAME))
    if unknown:
        raise CRBenchConfigError(
            f"{pyproject}: unknown key(s) in [tool.crbench]: {', '.join(unknown)}; known keys: "
            f"{', '.join(OPTIONS_BY_NAME)}"
        )
    return table


def make_settings(**options: Any) -> Settings:
    """Settings from keyword options named as in ``[tool.crbench]`` (for use from
    Python); an option not given takes its default."""
    unknown = sorted(set(options) - set(OPTIONS_BY_NAME))
    if unknown:
        raise CRBenchConfigError(f"unknown option(s) {', '.join(unknown)}; expected one of "
                                 f"{', '.join(OPTIONS_BY_NAME)}")
    return resolve(options, {}, {})


def resolve(flags: dict[str, Any], tool: dict[str, Any], ini: dict[str, Any], *,
            tool_file: Path | None = None, ini_file: Path | None = None,
            cwd: Path | None = None) -> Settings:
    """Resolve every option: ``flags`` (None = not given) > ``tool`` > ``ini`` > default."""
    cwd = cwd or Path(os.getcwd())
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for opt in OPTIONS:
        sources = (
            (flags.get(opt.name), opt.flag, cwd),
            (tool.get(opt.name), f"{tool_file or 'pyproject.toml'} [tool.crbench] {opt.name}",
             tool_file.parent if tool_file else cwd),
            (ini.get(opt.name), f"{ini_file or 'ini file'} crbench_{opt.name}",
             ini_file.parent if ini_file else cwd),
        )
        for raw, where, base in sources:
            if raw is None or (raw == "" and where.endswith(f"crbench_{opt.name}")):
                continue  # not given (an ini key that is absent reads as "")
            if raw == "" or raw == [] or (isinstance(raw, list) and not any(
                    str(v).strip() for v in raw)):
                raise CRBenchConfigError(
                    f"{where}: empty value; expected {opt.metavar or 'a value'} (leave the "
                    f"option out for the default: {_shown(opt.default)})")
            value = opt.convert(raw, where)
            if opt.path and value is not None:
                value = (base / Path(value).expanduser()).resolve()
            values[opt.name], origin[opt.name] = value, where
            break
        else:
            default = opt.default() if callable(opt.default) else opt.default
            values[opt.name] = list(default) if isinstance(default, list) else default
            origin[opt.name] = "default"
    if not values["model"]:
        raise CRBenchConfigError("--crbench-model: at least one detector is needed")
    if not values["dataset"]:
        raise CRBenchConfigError("--crbench-dataset: at least one dataset is needed")
    return Settings(**values, origin=origin)
