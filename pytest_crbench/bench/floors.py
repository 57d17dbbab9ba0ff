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
absent has no floor.

Photometric limits (method.md section 4) sit in the table ``photometry`` beside the
regions, for all stars, and in one sub-table per star-size bin (``"16-50"``,
``"50-200"``, ``"200-400"``: segment area in px)::

    [floors."deepcr:ACS-WFC".sim.photometry]
    max_anomalous = 0.15        # anomalous stars / contaminated stars    <= value
    min_inside_97_103 = 0.50    # ratio F_cleaned/F_clean in [0.97, 1.03]  >= value
    max_outside_90_110 = 0.10   # ratio outside [0.9, 1.1]                 <= value

    [floors."deepcr:ACS-WFC".sim.photometry."200-400"]
    max_anomalous = 0.40

All three fractions are over the *contaminated* stars (|F_original − F_clean| > 3σ_F),
as :func:`pytest_crbench.science.photometry.photometry_summary` defines them.  ``max_*`` keys
are ceilings (observed must be <= value), ``min_*`` keys floors (observed >= value).
A fraction that is undefined (no contaminated star in the bin) fails where a limit is
set and passes where none is.

:func:`write_floors` produces this file from a run — floors are the observed value minus
the margin rounded down, ceilings the observed value plus the margin rounded up (3
decimals, clipped to [0, 1]) — and writes it atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_crbench.bench.checks import (PHOTOMETRY_BINS, PHOTOMETRY_METRICS, Check,
                                         PhotometryCheck, PixelFloorCheck,
                                         ceiling_from_observed, floor_from_observed)
from pytest_crbench._util import atomic_write, read_toml
from pytest_crbench.errors import CRBenchConfigError

SCHEMA = "crbench-floors/1"

__all__ = ["SCHEMA", "load_floors", "render_floors", "write_floors", "generate_floors",
           "write_generated_floors", "floor_from_observed", "ceiling_from_observed",
           "PHOTOMETRY_METRICS", "PHOTOMETRY_BINS"]


def load_floors(path: Path, *, metrics: tuple[str, ...],
                bins: tuple[str, ...] = PHOTOMETRY_BINS) -> dict:
    """Read a floors file; errors name the file and the offending key.

    Returns ``{PixelFloorCheck: floor}`` for pixel scores and ``{PhotometryCheck: limit}``
    for the ``photometry`` tables, in one dict.
    """
    path = Path(path)
    data = read_toml(path, "floors file")
    schema = data.get("schema")
    if schema != SCHEMA:
        raise CRBenchConfigError(
            f"floors file {path}: expected schema = {SCHEMA!r}, got {schema!r}"
        )
    unknown_top = sorted(set(data) - {"schema", "floors"})
    if unknown_top:
        raise CRBenchConfigError(f"floors file {path}: unknown top-level key(s) {unknown_top}")
    table = data.get("floors", {})
    out: dict = {}

    def table_of(obj, where):
        if not isinstance(obj, dict):
            raise CRBenchConfigError(f"floors file {path}: {where} must be a table")
        return obj

    def number(value, where) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= 1:
            raise CRBenchConfigError(
                f"floors file {path}: {where} must be a number from 0 to 1, got {value!r}"
            )
        return float(value)

    def photometry(det, ds, table, where, size_bin):
        for name, value in table_of(table, where).items():
            here = f"{where}.{name}"
            if isinstance(value, dict) and size_bin == "all":
                if name not in bins:
                    raise CRBenchConfigError(
                        f"floors file {path}: {here}: unknown star-size bin {name!r}; "
                        f"expected one of {', '.join(bins)}")
                photometry(det, ds, value, f'{where}."{name}"', name)
                continue
            if name not in PHOTOMETRY_METRICS:
                raise CRBenchConfigError(
                    f"floors file {path}: {here}: unknown photometric key {name!r}; expected "
                    f"one of {', '.join(PHOTOMETRY_METRICS)}"
                    + (f" or a size-bin table ({', '.join(bins)})" if size_bin == "all" else ""))
            out[PhotometryCheck(det, ds, size_bin, name)] = number(value, here)

    for det, datasets in table_of(table, "floors").items():
        for ds, regions in table_of(datasets, f"floors.{det!r}").items():
            for region, values in table_of(regions, f"floors.{det!r}.{ds}").items():
                if region == "photometry":
                    photometry(det, ds, values, f"floors.{det!r}.{ds}.photometry", "all")
                    continue
                for metric, value in table_of(values, f"floors.{det!r}.{ds}.{region}").items():
                    where = f"floors.{det!r}.{ds}.{region}.{metric}"
                    if metric not in metrics:
                        raise CRBenchConfigError(
                            f"floors file {path}: {where}: unknown metric {metric!r}; expected "
                            f"one of {', '.join(metrics)}"
                        )
                    out[PixelFloorCheck(det, ds, region, metric)] = number(value, where)
    return out


def _key(s: str) -> str:
    bare = s.replace("-", "").replace("_", "")
    return s if bare.isalnum() and bare.isascii() else '"' + s.replace('"', '\\"') + '"'


def render_floors(floors: dict, *, header: str = "") -> str:
    """TOML text of ``floors`` in the documented layout (sorted, stable)."""
    lines = []
    for line in header.splitlines():
        lines.append(f"# {line}".rstrip())
    lines += [f'schema = "{SCHEMA}"', ""]
    groups: dict[tuple[str, str, str], dict[str, float]] = {}
    for check, value in floors.items():
        table = ".".join(_key(p) if i == 0 else _quoted(p)
                         for i, p in enumerate(check.floor_table()))
        groups.setdefault((check.detector, check.dataset, table), {})[check.metric] = value
    for (det, ds, region), values in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], _region_order(kv[0][2]))):
        lines.append(f"[floors.{_key(det)}.{_key(ds)}.{region}]")
        for metric in sorted(values):
            lines.append(f"{metric} = {values[metric]:.3f}")
        lines.append("")
    return "\n".join(lines)


def _quoted(s: str) -> str:
    return '"' + s.replace('"', '\\"') + '"'


_BIN_ORDER = {f'photometry.{_quoted(b)}': i for i, b in enumerate(PHOTOMETRY_BINS)}


def _region_order(region: str) -> tuple[int, float]:
    if region == "full":
        return (0, 0.0)
    if region == "photometry":
        return (3, -1.0)
    if region.startswith("photometry."):
        return (3, float(_BIN_ORDER.get(region, 99)))
    try:
        return (1, float(region[1:]))
    except ValueError:
        return (2, 0.0)


def write_floors(path: Path, floors: dict, *, header: str = "") -> Path:
    text = render_floors(floors, header=header)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def generate_floors(checks: list[Check], observed, margin: float) -> dict[Check, float]:
    """Limits from a finished run: for every check with a limit whose value is defined,
    ``check.limit_from_observed(value, margin)``.

    ``observed(detector, dataset)`` returns ``(evaluation, analysis)`` (either None
    where that pair was not computed).
    """
    new = {}
    for check in checks:
        if check.has_limit:
            value = check.observe(*observed(check.detector, check.dataset))
            if value is not None:
                new[check] = check.limit_from_observed(value, margin)
    return new


def write_generated_floors(path: Path, floors: dict[Check, float], margin: float) -> Path:
    """Write floors made by :func:`generate_floors`, with a header saying how."""
    return write_floors(path, floors, header=(
        f"Floors generated by pytest-crbench from a run: observed score minus "
        f"{margin:g}, rounded down\n(max_* photometric ceilings: observed "
        f"plus {margin:g}, rounded up)."))
