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

Scores against the simulation truth (exposures carrying ``CRTRUTH``: a true cosmic ray
has injected charge > ``truth_snr`` × its noise) sit in the table ``truth``, one
sub-table per region with the same metrics; a truth score is gated only where such a
table names it (a dataset without ``CRTRUTH`` fails a truth floor, with the reason)::

    [floors."deepcr:ACS-WFC".sim.truth.full]
    recall = 0.94

    [floors."deepcr:ACS-WFC".sim.truth.k10]
    precision = 0.93

All three photometric fractions are over the *contaminated* stars (|F_original − F_clean| > 3σ_F),
as :func:`pytest_crbench.science.photometry.photometry_summary` defines them.  ``max_*`` keys
are ceilings (observed must be <= value), ``min_*`` keys floors (observed >= value).
A fraction that is undefined (no contaminated star in the bin) fails where a limit is
set and passes where none is.

:func:`write_floors` produces this file from a run — floors are the observed value minus
the margin rounded down, ceilings the observed value plus the margin rounded up (3
decimals, clipped to [0, 1]) — and writes it atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pytest_crbench.bench.settings import read_toml
from pytest_crbench.errors import CRBenchConfigError

SCHEMA = "crbench-floors/1"

#: photometric limit keys → (summary field of photometry_summary, "min" | "max")
PHOTOMETRY_METRICS: dict[str, tuple[str, str]] = {
    "max_anomalous": ("anomalous", "max"),
    "min_inside_97_103": ("inside_97_103", "min"),
    "max_outside_90_110": ("outside_90_110", "max"),
}
#: size-bin labels accepted in floors files (PhotometryConfig's default bins)
PHOTOMETRY_BINS = ("16-50", "50-200", "200-400")


#: What a pixel score is measured against: the reference masks, or the simulation truth.
AGAINST = ("reference", "truth")


@dataclass(frozen=True)
class FloorKey:
    detector: str
    dataset: str
    region: str
    metric: str
    against: str = "reference"  # or "truth" (the ``truth`` table of the floors file)

    def __str__(self) -> str:
        where = self.region if self.against == "reference" else f"truth / {self.region}"
        return f"{self.detector} / {self.dataset} / {where} / {self.metric}"


@dataclass(frozen=True)
class PhotometryKey:
    """A photometric limit: ``bin`` is ``"all"`` or a size-bin label like ``"16-50"``."""

    detector: str
    dataset: str
    bin: str
    metric: str

    @property
    def kind(self) -> str:
        return PHOTOMETRY_METRICS[self.metric][1]

    @property
    def field(self) -> str:
        return PHOTOMETRY_METRICS[self.metric][0]

    def __str__(self) -> str:
        size = "all stars" if self.bin == "all" else f"{self.bin} px stars"
        return f"{self.detector} / {self.dataset} / photometry {size} / {self.metric}"


@dataclass(frozen=True)
class StabilityKey:
    """No group outside the 3σ-equivalent leave-one-out prediction interval of ``quantity`` (no floor)."""

    detector: str
    dataset: str
    quantity: str  # f1, f2 or rms

    def __str__(self) -> str:
        return f"{self.detector} / {self.dataset} / stability / {self.quantity}"


@dataclass(frozen=True)
class SmokeKey:
    """A smoke-only dataset (no reference possible): the detector runs on every exposure
    and returns a valid mask (no floor)."""

    detector: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.detector} / {self.dataset} / smoke"


def load_floors(path: Path, *, metrics: tuple[str, ...],
                bins: tuple[str, ...] = PHOTOMETRY_BINS) -> dict:
    """Read a floors file; errors name the file and the offending key.

    Returns ``{FloorKey: floor}`` for pixel scores and ``{PhotometryKey: limit}`` for the
    ``photometry`` tables, in one dict.
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
            out[PhotometryKey(det, ds, size_bin, name)] = number(value, here)

    def pixel_scores(det, ds, region, values, where, against):
        for metric, value in table_of(values, where).items():
            if metric not in metrics:
                raise CRBenchConfigError(
                    f"floors file {path}: {where}.{metric}: unknown metric {metric!r}; "
                    f"expected one of {', '.join(metrics)}")
            out[FloorKey(det, ds, region, metric, against)] = number(value, f"{where}.{metric}")

    for det, datasets in table_of(table, "floors").items():
        for ds, regions in table_of(datasets, f"floors.{det!r}").items():
            for region, values in table_of(regions, f"floors.{det!r}.{ds}").items():
                if region == "photometry":
                    photometry(det, ds, values, f"floors.{det!r}.{ds}.photometry", "all")
                    continue
                if region == "truth":
                    for truth_region, tvalues in table_of(
                            values, f"floors.{det!r}.{ds}.truth").items():
                        pixel_scores(det, ds, truth_region, tvalues,
                                     f"floors.{det!r}.{ds}.truth.{truth_region}", "truth")
                    continue
                pixel_scores(det, ds, region, values, f"floors.{det!r}.{ds}.{region}",
                             "reference")
    return out


def floor_from_observed(value: float, margin: float) -> float:
    """Observed value minus ``margin``, rounded down to 3 decimals, clipped at 0."""
    return max(0.0, math.floor((value - margin) * 1000 + 1e-9) / 1000)


def ceiling_from_observed(value: float, margin: float) -> float:
    """Observed value plus ``margin``, rounded up to 3 decimals, clipped at 1."""
    return min(1.0, math.ceil((value + margin) * 1000 - 1e-9) / 1000)


def limit_from_observed(key: "PhotometryKey", value: float, margin: float) -> float:
    """A generated photometric limit: a floor for ``min_*`` keys, a ceiling for ``max_*``."""
    return ceiling_from_observed(value, margin) if key.kind == "max" \
        else floor_from_observed(value, margin)


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
    for key, value in floors.items():
        if isinstance(key, PhotometryKey):
            table = "photometry" if key.bin == "all" else f"photometry.{_quoted(key.bin)}"
            groups.setdefault((key.detector, key.dataset, table), {})[key.metric] = value
        else:
            region = _key(key.region) if key.against == "reference" \
                else f"truth.{_key(key.region)}"
            groups.setdefault((key.detector, key.dataset, region), {})[key.metric] = value
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
    if region.startswith("truth."):  # after the reference regions, in the same order
        inner = _region_order(region[len("truth."):])
        return (2, inner[0] * 1e6 + inner[1])
    if region == "full":
        return (0, 0.0)
    if region == "photometry":
        return (3, -1.0)
    if region.startswith("photometry."):
        return (3, float(_BIN_ORDER.get(region, 99)))
    try:
        return (1, float(region[1:]))
    except ValueError:
        return (2, -1.0)


def write_floors(path: Path, floors: dict, *, header: str = "") -> Path:
    from pytest_crbench.datasets.fits import atomic_write

    text = render_floors(floors, header=header)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
