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
has injected charge > ``truth_snr`` × its noise, fainter charge is left out) sit in the
table ``truth``, one sub-table per region with the same metrics.  A truth score becomes
a test item only where such a table names it (``--crbench-generate-floors`` writes them
for datasets with ``CRTRUTH``; a dataset without it fails a truth floor, with the
reason)::

    [floors."deepcr:ACS-WFC".sim.truth.full]
    recall = 0.94

    [floors."deepcr:ACS-WFC".sim.truth.k10]
    precision = 0.93

All three photometric fractions are over the *contaminated* stars (|F_original − F_clean| > 3σ_F),
as :func:`pytest_crbench.science.photometry_summary.photometry_summary` defines them.  ``max_*`` keys
are ceilings (observed must be <= value), ``min_*`` keys floors (observed >= value).
A fraction that is undefined (no contaminated star in the bin) fails where a limit is
set and passes where none is.

:func:`write_floors` writes such a file atomically; ``--crbench-generate-floors`` fills it
with the bootstrap bounds of :mod:`pytest_crbench.bench.floor_bounds`, a comment where a
score has too few positives to support a limit, and one table per detector recording
what the floors were made with (a run with another version or threshold says so)::

    [made_with."deepcr:ACS-WFC"]
    version = "ACS-WFC UNet2SigmoidBatchNorm(1,1,32) scale=1 sha256:…"
    threshold = 0.5

Floors of a dataset also gate its independent draws: a run on ``sim@seed=7`` without
floors of its own is held to the floors of ``sim``; and a candidate detector without
floors of its own is held to the floors of ``--crbench-baseline`` (:func:`lookup`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pytest_crbench.bench.checks import (PHOTOMETRY_BINS, PHOTOMETRY_METRICS, PhotometryCheck,
                                         PixelFloorCheck)
from pytest_crbench._util import atomic_write, read_toml
from pytest_crbench.errors import CRBenchConfigError

SCHEMA = "crbench-floors/1"

__all__ = ["SCHEMA", "load_floors", "render_floors", "write_floors", "lookup", "floors_owner",
           "read_made_with", "made_with_mismatch", "PHOTOMETRY_METRICS", "PHOTOMETRY_BINS"]


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
    unknown_top = sorted(set(data) - {"schema", "floors", "made_with"})
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

    def pixel_scores(det, ds, region, values, where, against):
        for metric, value in table_of(values, where).items():
            if metric not in metrics:
                raise CRBenchConfigError(
                    f"floors file {path}: {where}.{metric}: unknown metric {metric!r}; "
                    f"expected one of {', '.join(metrics)}")
            out[PixelFloorCheck(det, ds, region, metric, against)] = number(
                value, f"{where}.{metric}")

    for det, datasets in table_of(table, "floors").items():
        for ds, regions in table_of(datasets, f"floors.{det!r}").items():
            for region, values in table_of(regions, f"floors.{det!r}.{ds}").items():
                if region == "photometry":
                    photometry(det, ds, values, f"floors.{det!r}.{ds}.photometry", "all")
                    continue
                if region == "truth":
                    where = f"floors.{det!r}.{ds}.truth"
                    for truth_region, tvalues in table_of(values, where).items():
                        pixel_scores(det, ds, truth_region, tvalues,
                                     f"{where}.{truth_region}", "truth")
                    continue
                pixel_scores(det, ds, region, values, f"floors.{det!r}.{ds}.{region}",
                             "reference")
    return out


def _key(s: str) -> str:
    bare = s.replace("-", "").replace("_", "")
    return s if bare.isalnum() and bare.isascii() else '"' + s.replace('"', '\\"') + '"'


def render_floors(floors: dict, *, header: str = "", skipped: dict | None = None,
                  made_with: dict[str, dict] | None = None) -> str:
    """TOML text of ``floors`` in the documented layout (sorted, stable).

    ``skipped`` (check → reason) becomes a comment in the check's table; ``made_with``
    (detector → {"version", "threshold"}) the ``[made_with."<detector>"]`` tables.
    """
    lines = []
    for line in header.splitlines():
        lines.append(f"# {line}".rstrip())
    lines += [f'schema = "{SCHEMA}"', ""]
    for det, rec in sorted((made_with or {}).items()):
        lines.append(f"[made_with.{_key(det)}]")
        lines += [f"{name} = {_toml_value(value)}" for name, value in rec.items()
                  if value is not None]
        lines.append("")
    groups: dict[tuple[str, str, str], dict[str, float]] = {}
    notes: dict[tuple[str, str, str], dict[str, str]] = {}

    def table(check) -> tuple[str, str, str]:
        quote = _quoted if isinstance(check, PhotometryCheck) else _key  # "16-50"
        return (check.detector, check.dataset, ".".join(
            _key(p) if i == 0 else quote(p) for i, p in enumerate(check.floor_table())))

    for check, value in floors.items():
        groups.setdefault(table(check), {})[check.metric] = value
    for check, reason in (skipped or {}).items():
        notes.setdefault(table(check), {})[check.metric] = reason
    for det, ds, region in sorted(set(groups) | set(notes), key=lambda k: (
            k[0], k[1], _region_order(k[2]))):
        lines.append(f"[floors.{_key(det)}.{_key(ds)}.{region}]")
        lines += [f"# no {metric}: {reason}"
                  for metric, reason in sorted(notes.get((det, ds, region), {}).items())]
        values = groups.get((det, ds, region), {})
        lines += [f"{metric} = {values[metric]:.3f}" for metric in sorted(values)]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return _quoted(str(value))


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


def write_floors(path: Path, floors: dict, *, header: str = "", skipped: dict | None = None,
                 made_with: dict[str, dict] | None = None) -> Path:
    text = render_floors(floors, header=header, skipped=skipped, made_with=made_with)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_floors_match(floors: dict, path: Path, *, detectors, datasets, regions,
                       smoke_only=()) -> None:
    """Every floor must name something the run checks, else the gate is silently off.

    A floor is refused (one :class:`CRBenchConfigError` naming the floors file and every
    offending table, with a did-you-mean) when its detector is neither configured nor a
    valid detector spec (a typo; a valid spec that this run does not configure is allowed,
    as one floors file may gate several jobs: the shipped file has ten detectors), its
    dataset is unknown or smoke-only (never scored), or its region is not one of the
    run's ``regions`` (``full`` and the ``--crbench-k`` list).  A known dataset that this
    run does not evaluate is allowed: one floors file may serve several jobs (the
    shipped file covers ``sim`` and ``stis-crsplit``).  Unknown metrics and size bins
    are refused by :func:`load_floors` already.
    """
    import difflib

    def hint(value, choices) -> str:
        close = difflib.get_close_matches(value, list(choices), n=1)
        return f"; did you mean {close[0]!r}?" if close else ""

    problems: dict[str, str] = {}
    for key in floors:
        table = f"[floors.{_key(key.detector)}.{_key(key.dataset)}"
        if key.detector not in detectors and not _valid_spec(key.detector):
            problems.setdefault(table + "]", f"detector {key.detector!r} is not configured "
                                f"(--crbench-model: {', '.join(detectors)}) and is no "
                                "detector spec" + hint(key.detector, detectors))
        elif key.dataset not in datasets:
            problems.setdefault(table + "]", f"unknown dataset {key.dataset!r}"
                                + hint(key.dataset, datasets))
        elif key.dataset in smoke_only:
            problems.setdefault(table + "]", f"dataset {key.dataset!r} is smoke-only: it "
                                "is never scored")
        elif isinstance(key, PixelFloorCheck) and key.region not in regions:
            problems.setdefault(f"{table}.{_key(key.region)}]",
                                f"region {key.region!r} is not in this run "
                                f"({', '.join(regions)}; --crbench-k)"
                                + hint(key.region, regions))
    if problems:
        lines = [f"  {table}: {why}" for table, why in problems.items()]
        raise CRBenchConfigError(
            f"floors file {path}: {len(problems)} table(s) match nothing this run checks, "
            "so their floors would never be asserted:\n" + "\n".join(lines))


def _valid_spec(spec: str) -> bool:
    """Whether ``spec`` names a detector (checked without loading any model)."""
    from pytest_crbench.detectors.specs import check_spec
    from pytest_crbench.errors import CRBenchError

    try:
        check_spec(spec)
    except CRBenchError:
        return False
    return True


def lookup(floors: dict, check, baseline: str | None = None):
    """The limit of ``check``.  Without one of its own: for an independent draw of a
    dataset (``sim@seed=7``) the limit of the dataset it was drawn from (``sim``); then,
    where a ``baseline`` detector is configured, the baseline's limit (a candidate model
    is held to the production model's floors without editing the file)."""
    base = check.dataset.partition("@")[0]
    candidates = [check] + ([replace(check, dataset=base)] if base != check.dataset else [])
    if baseline is not None and baseline != check.detector:
        candidates += [replace(c, detector=baseline) for c in candidates]
    for c in candidates:
        if c in floors:
            return floors[c]
    return None


def floors_owner(floors: dict, check, baseline: str | None = None) -> str | None:
    """The detector whose limit :func:`lookup` returns for ``check`` (None without one)."""
    if lookup(floors, check) is not None:
        return check.detector
    if lookup(floors, check, baseline) is not None:
        return baseline
    return None


def read_made_with(path: Path) -> dict[str, dict]:
    """The ``[made_with."<detector>"]`` tables: the version and threshold each detector's
    floors were generated with ({} for files written before they were recorded)."""
    table = read_toml(path, "floors file").get("made_with", {})
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise CRBenchConfigError(f"floors file {path}: made_with must hold one table per "
                                 "detector")
    return table


def made_with_mismatch(path: Path, made_with: dict[str, dict], detector: str, version: str,
                       threshold, applied_to: str | None = None) -> str | None:
    """A sentence where ``detector``'s floors were made with another version/threshold
    than this run's (``applied_to``: the candidate held to them as to its baseline's)."""
    rec = made_with.get(detector)
    if rec is None:
        return None
    diffs = []
    if "version" in rec and str(rec["version"]) != str(version):
        diffs.append(f"version {rec['version']!r} (this run: {version!r})")
    if "threshold" in rec and rec["threshold"] != threshold:
        diffs.append(f"threshold {rec['threshold']} (this run: {threshold})")
    if not diffs:
        return None
    whose = detector if applied_to in (None, detector) else \
        f"{detector} (applied to {applied_to}, which has none of its own)"
    return (f"floors in {path} for {whose} were generated with " + " and ".join(diffs)
            + ": they may not apply")
