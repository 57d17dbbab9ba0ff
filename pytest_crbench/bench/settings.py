"""Every pytest-crbench option, and the one place where each is resolved.

An option ``name`` exists as the flag ``--crbench-<name>`` (dashes), as the key
``<name>`` (underscores) of the ``[tool.crbench]`` table in ``pyproject.toml`` and as the
pytest ini key ``crbench_<name>``.  Precedence: flag > ``[tool.crbench]`` > ini > default.
Paths in ``[tool.crbench]`` or the ini file are relative to the file they are written
in; paths on the command line are relative to the current directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pytest_crbench._util import parse_bool, read_toml
from pytest_crbench.errors import CRBenchConfigError

DEFAULT_MODELS = ("deepcr:ACS-WFC", "astroscrappy")
DEFAULT_DATASETS = ("sim",)
DEFAULT_KS = (3, 5, 10, 20, 40, 80, 160)
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("fp32", "bf16", "fp16")
FILL_METHODS = ("median", "idw")


def _list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.replace("\n", ",").split(",")]
    elif isinstance(value, (list, tuple)):
        items = []
        for v in value:
            items.extend(_list(v, what))
    else:
        raise CRBenchConfigError(f"{what}: expected a string or a list of strings, got {value!r}")
    return [v for v in items if v]


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


def _device(value: Any, what: str) -> str:
    v = str(value).strip().lower()
    if v not in DEVICES:
        raise CRBenchConfigError(f"{what}: expected one of {', '.join(DEVICES)}, got {value!r}")
    return v


def _precision(value: Any, what: str) -> str:
    v = str(value).strip().lower()
    if v not in PRECISIONS:
        raise CRBenchConfigError(
            f"{what}: expected one of {', '.join(PRECISIONS)}, got {value!r}")
    return v


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


def _fill_method(value: Any, what: str) -> str:
    v = str(value).strip().lower()
    if v not in FILL_METHODS:
        raise CRBenchConfigError(
            f"{what}: expected one of {', '.join(FILL_METHODS)}, got {value!r}")
    return v


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
    default: Any
    convert: Callable[[Any, str], Any]
    repeat: bool = False  # flag may be given several times (append)
    path: bool = False  # a file or folder path
    metavar: str | None = None
    flag_type: Callable | None = None

    @property
    def flag(self) -> str:
        return "--crbench-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "crbench_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option("model", "detector to benchmark: deepcr:<model>, astroscrappy, package.module:factory "
           "or an entry-point name (repeatable; default: deepcr:ACS-WFC and astroscrappy)",
           list(DEFAULT_MODELS), _list, repeat=True, metavar="SPEC"),
    Option("dataset", "dataset to evaluate on (repeatable; default: sim, the embedded "
           "simulated ACS/WFC F606W data)", list(DEFAULT_DATASETS), _list, repeat=True,
           metavar="NAME"),
    Option("k", "star-region thresholds in units of the background RMS, comma-separated "
           "(default: 3,5,10,20,40,80,160)", list(DEFAULT_KS), _ks, metavar="K,K,..."),
    Option("threshold", "probability threshold for detectors that return probabilities "
           "(default: the detector's own, 0.5 for deepCR)", None, _unit_interval,
           metavar="P"),
    Option("device", "where neural detectors run: cpu, cuda or auto (default: cpu)", "cpu",
           _device, metavar="DEVICE"),
    Option("precision", "arithmetic of neural detectors: fp32 (exact), bf16 or fp16 "
           "(torch.autocast; mask agreement with fp32 is measured in benchmarks/; fp16 "
           "refuses images beyond the float16 range) (default: fp32)", "fp32", _precision,
           metavar="P"),
    Option("scheduler", "evaluate on a Dask cluster: local:N starts a LocalCluster of N "
           "worker processes, tcp://host:port joins a running scheduler; the per-exposure "
           "work runs on the workers and only small records come back (default: in this "
           "process)", None, _scheduler, metavar="ADDRESS"),
    Option("floors", "TOML file of score floors to assert", None, _str, path=True,
           metavar="PATH"),
    Option("generate_floors", "write a floors TOML from this run (observed value minus "
           "the floors margin) to PATH", None, _str, path=True, metavar="PATH"),
    Option("floors_margin", "margin subtracted from observed scores by "
           "--crbench-generate-floors (default: 0.02)", 0.02, _unit_interval, metavar="M"),
    Option("json", "write the results (schema crbench-results/2) to PATH", None, _str,
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
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass
class Settings:
    """The resolved options of one run, plus where each value came from."""

    model: list[str]
    dataset: list[str]
    k: list[int]
    threshold: float | None
    device: str
    precision: str
    scheduler: str | None
    floors: Path | None
    generate_floors: Path | None
    floors_margin: float
    json: Path | None
    report: Path | None
    fill_method: str
    anomalous_level: float
    save_masks: Path | None
    data_dir: Path | None
    offline: bool
    origin: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {o.name: (str(getattr(self, o.name)) if isinstance(getattr(self, o.name), Path)
                         else getattr(self, o.name)) for o in OPTIONS}


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
            if raw is None or raw == [] or raw == "":
                continue
            value = opt.convert(raw, where)
            if opt.path and value is not None:
                value = (base / Path(value).expanduser()).resolve()
            values[opt.name], origin[opt.name] = value, where
            break
        else:
            default = opt.default
            values[opt.name] = list(default) if isinstance(default, list) else default
            origin[opt.name] = "default"
    if not values["model"]:
        raise CRBenchConfigError("--crbench-model: at least one detector is needed")
    if not values["dataset"]:
        raise CRBenchConfigError("--crbench-dataset: at least one dataset is needed")
    return Settings(**values, origin=origin)
