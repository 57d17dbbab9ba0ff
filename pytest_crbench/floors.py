"""Floors: the minimum score each (detector, dataset, region, metric) must reach.

File format (TOML, ``schema = "crbench-floors/1"``)::

    schema = "crbench-floors/1"

    [floors."deepcr:ACS-WFC".sim.full]
    recall = 0.86
    precision = 0.93

    [floors."deepcr:ACS-WFC".sim.k160]
    recall = 0.50

Keys are detector spec → dataset name → region (``full``, ``k3``, ``k5``, …) → metric
(``precision``, ``recall``, ``f1``, ``f2``), values floors in [0, 1].  A metric that is
absent has no floor.  :func:`write_floors` produces this file from a run (observed
value minus a margin, rounded down to 3 decimals) and writes it atomically.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import CRBenchConfigError

SCHEMA = "crbench-floors/1"


@dataclass(frozen=True)
class FloorKey:
    detector: str
    dataset: str
    region: str
    metric: str

    def __str__(self) -> str:
        return f"{self.detector} / {self.dataset} / {self.region} / {self.metric}"


def load_floors(path: Path, *, metrics: tuple[str, ...]) -> dict[FloorKey, float]:
    """Read a floors file; errors name the file and the offending key."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise CRBenchConfigError(f"floors file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CRBenchConfigError(f"floors file {path}: not valid TOML ({exc})") from None
    schema = data.get("schema")
    if schema != SCHEMA:
        raise CRBenchConfigError(
            f"floors file {path}: expected schema = {SCHEMA!r}, got {schema!r}"
        )
    unknown_top = sorted(set(data) - {"schema", "floors"})
    if unknown_top:
        raise CRBenchConfigError(f"floors file {path}: unknown top-level key(s) {unknown_top}")
    table = data.get("floors", {})
    out: dict[FloorKey, float] = {}

    def table_of(obj, where):
        if not isinstance(obj, dict):
            raise CRBenchConfigError(f"floors file {path}: {where} must be a table")
        return obj

    for det, datasets in table_of(table, "floors").items():
        for ds, regions in table_of(datasets, f"floors.{det!r}").items():
            for region, values in table_of(regions, f"floors.{det!r}.{ds}").items():
                for metric, value in table_of(values, f"floors.{det!r}.{ds}.{region}").items():
                    where = f"floors.{det!r}.{ds}.{region}.{metric}"
                    if metric not in metrics:
                        raise CRBenchConfigError(
                            f"floors file {path}: {where}: unknown metric {metric!r}; expected "
                            f"one of {', '.join(metrics)}"
                        )
                    if isinstance(value, bool) or not isinstance(value, (int, float)) \
                            or not 0 <= value <= 1:
                        raise CRBenchConfigError(
                            f"floors file {path}: {where} must be a number from 0 to 1, "
                            f"got {value!r}"
                        )
                    out[FloorKey(det, ds, region, metric)] = float(value)
    return out


def floor_from_observed(value: float, margin: float) -> float:
    """Observed value minus ``margin``, rounded down to 3 decimals, clipped at 0."""
    return max(0.0, math.floor((value - margin) * 1000 + 1e-9) / 1000)


def _key(s: str) -> str:
    bare = s.replace("-", "").replace("_", "")
    return s if bare.isalnum() and bare.isascii() else '"' + s.replace('"', '\\"') + '"'


def render_floors(floors: dict[FloorKey, float], *, header: str = "") -> str:
    """TOML text of ``floors`` in the documented layout (sorted, stable)."""
    lines = []
    for line in header.splitlines():
        lines.append(f"# {line}".rstrip())
    lines += [f'schema = "{SCHEMA}"', ""]
    groups: dict[tuple[str, str, str], dict[str, float]] = {}
    for key, value in floors.items():
        groups.setdefault((key.detector, key.dataset, key.region), {})[key.metric] = value
    for (det, ds, region), values in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], _region_order(kv[0][2]))):
        lines.append(f"[floors.{_key(det)}.{_key(ds)}.{_key(region)}]")
        for metric in sorted(values):
            lines.append(f"{metric} = {values[metric]:.3f}")
        lines.append("")
    return "\n".join(lines)


def _region_order(region: str) -> tuple[int, float]:
    if region == "full":
        return (0, 0.0)
    try:
        return (1, float(region[1:]))
    except ValueError:
        return (2, 0.0)


def write_floors(path: Path, floors: dict[FloorKey, float], *, header: str = "") -> Path:
    from .fitsio import atomic_write

    text = render_floors(floors, header=header)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
