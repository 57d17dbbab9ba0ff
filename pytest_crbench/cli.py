"""``crbench`` command line: ``crbench evaluate``, ``crbench data list|fetch|verify|add|seed``
and ``crbench compare``.

    crbench evaluate --model deepcr:ACS-WFC --dataset sim-full --scheduler tcp://host:8786 \
        --json results.json                 the benchmark outside pytest (batch jobs on a
                                            cluster): the same evaluation, the same JSON,
                                            report and floors as ``pytest --crbench``
    crbench compare BASE.json CANDIDATE.json
                                            paired comparison of two saved runs
                                            (see :mod:`pytest_crbench.compare_runs`)

    crbench data list                       datasets, their files, cached or not, sizes
    crbench data fetch stis-crsplit [...]   download datasets or single files (hash-checked)
    crbench data verify                     re-hash the cache; corrupted files are deleted
    crbench data seed DIR                   fill the cache from a local folder (hash-checked)
    crbench data add FILE|URL ... [--sha256 H] [--group G --kind K [--dataset D]]
                                            record own files / archive addresses with their
                                            hashes in the user registry (and groups)

Common options: ``--data-dir DIR`` (else ``[tool.crbench] data_dir`` of the nearest
pyproject.toml, else ``$CRBENCH_DATA_DIR``, else the platform cache), ``--offline`` and
``--lock-timeout SECONDS`` (how long to wait for a cache lock another process holds).
``add`` validates everything (names, hashes, that each file loads, the group) before it
writes anything; a read-only cache can be listed and verified.
Exit status: 0 success, 1 a data problem (missing, corrupted, refused) or, for
``evaluate``, a floor not met or a detector that failed, 2 usage error;
``crbench compare``: 0 no significant regression, 1 a significant regression, 2 the files
cannot be compared (or a usage error).

``crbench evaluate`` takes every pytest-crbench option as ``--<name>`` (``--model``,
``--dataset``, ``--scheduler``, ``--json`` …, the flags of ``pytest --crbench`` without
their ``crbench-`` prefix); options not given come from ``[tool.crbench]`` of
``--project`` (default: ./pyproject.toml), then the defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pytest_crbench.errors import CRBenchConfigError, CRBenchError

__all__ = ["build_parser", "main"]


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _resolve_dir(args) -> Path:
    from pytest_crbench.datasets.cache import config_data_dir, data_dir

    return data_dir(args.data_dir or config_data_dir())


def _names_for(targets: list[str], directory: Path) -> tuple[list[str], str | None]:
    """Expand dataset names into their files; file names pass through."""
    from pytest_crbench.datasets.catalog import load_groups, load_registry

    registry = load_registry(directory)
    groups = load_groups(directory, registry=registry)
    names: list[str] = []
    for t in targets:
        if t in groups.datasets:
            new = groups.dataset_files(t)
        elif t in groups.groups:
            new = groups.groups[t].all_files
        elif t in registry:
            new = [t]
        elif t == "all":
            new = list(registry)
        else:
            raise CRBenchError(
                f"{t!r} is neither a dataset ({', '.join(sorted(groups.datasets))}), a group, "
                "nor a registered file (see `crbench data list`)")
        names += [n for n in new if n not in names]
    dataset = targets[0] if len(targets) == 1 and targets[0] in groups.datasets else None
    return names, dataset


def cmd_list(args) -> int:
    from pytest_crbench.datasets.cache import status
    from pytest_crbench.datasets.catalog import load_groups, load_registry

    directory = _resolve_dir(args)
    registry = load_registry(directory)
    groups = load_groups(directory, registry=registry)
    print(f"data dir: {directory}")
    listed: set[str] = set()
    for name, ds in groups.datasets.items():
        files = groups.dataset_files(name)
        st = status(files, data_dir=directory)
        ncached = sum(s["cached"] for s in st.values())
        tag = "scored" if ds.scored else "smoke only, not scored"
        print(f"\n{name}  [{tag}]  {ncached}/{len(files)} cached\n  {ds.description}")
        for f in files:
            s = st[f]
            print(f"    {'cached ' if s['cached'] else 'missing'}  {_human(s['size']):>10}  {f}")
        listed.update(files)
    rest = [n for n in registry if n not in listed]
    if rest:
        st = status(rest, data_dir=directory)
        print("\nregistered files in no dataset:")
        for f in rest:
            s = st[f]
            print(f"    {'cached ' if s['cached'] else 'missing'}  {_human(s['size']):>10}  {f}")
    unusable = [g for g in groups.groups.values() if not g.usable]
    for g in unusable:
        print(f"\nexcluded group {g.name}: {' '.join(g.reason.split())}")
    return 0


def cmd_fetch(args) -> int:
    from pytest_crbench.datasets.cache import fetch

    directory = _resolve_dir(args)
    names, dataset = _names_for(args.targets, directory)
    t0 = time.perf_counter()
    paths = fetch(names, data_dir=directory, offline=args.offline,
                  progress=not args.no_progress, dataset=dataset, timeout=args.timeout,
                  lock_timeout=args.lock_timeout)
    print(f"{len(paths)} file(s) in {directory} ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_verify(args) -> int:
    from pytest_crbench.datasets.cache import verify

    directory = _resolve_dir(args)
    names = _names_for(args.targets, directory)[0] if args.targets else None
    t0 = time.perf_counter()
    report = verify(data_dir=directory, names=names, lock_timeout=args.lock_timeout)
    for name in report.good:
        print(f"ok       {name}")
    for name, actual in report.removed.items():
        print(f"CORRUPT  {name} (sha256 {actual}) — deleted; fetch it again with "
              f"`crbench data fetch {name}`")
    for name, actual in report.kept.items():
        print(f"CORRUPT  {name} (sha256 {actual}) — NOT deleted: the cache is read-only "
              "for this user; ask its owner to run `crbench data verify`")
    print(f"{len(report.good)} good, {len(report.removed)} corrupted (deleted), "
          + (f"{len(report.kept)} corrupted (read-only, kept), " if report.kept else "")
          + f"{len(report.absent)} not cached ({time.perf_counter() - t0:.1f} s)"
          + ("" if os.access(directory, os.W_OK) else f"; {directory} is read-only"))
    return 0 if report.ok else 1


def cmd_seed(args) -> int:
    from pytest_crbench.datasets.cache import seed

    directory = _resolve_dir(args)
    names = _names_for(args.targets, directory)[0] if args.targets else None
    t0 = time.perf_counter()
    report = seed(args.source, data_dir=directory, names=names, lock_timeout=args.lock_timeout)
    for name in report.copied:
        print(f"copied   {name}")
    for name, why in report.bad.items():
        print(f"REFUSED  {name}: {why}")
    print(f"{len(report.copied)} copied, {len(report.present)} already cached, "
          f"{len(report.bad)} refused (hash mismatch), {len(report.absent)} not in {args.source}, "
          f"{len(report.unregistered)} unregistered file(s) ignored "
          f"({time.perf_counter() - t0:.1f} s) → {directory}")
    return 0 if report.ok else 1


def _check_product(path: Path, *, loader: str, shown: str) -> list:
    """Load ``path`` as the loader will at run time: a truncated, non-FITS or unreadable
    file is refused here, before anything is written."""
    from pytest_crbench.datasets.hst import load_product

    try:
        return load_product(path, loader=loader, name=shown)
    except CRBenchError as exc:
        raise type(exc)(f"refused, nothing was written: {exc}") from None


def _plan_item(item: str, args, directory: Path, temps: list) -> tuple:
    """Name, hash and contents of one FILE or URL (a URL is downloaded into a temporary
    file, appended to ``temps``).  Returns (RegistryEntry, source path or None,
    exposures)."""
    import tempfile
    from urllib.parse import urlparse

    from pytest_crbench._util import sha256_file
    from pytest_crbench.datasets.cache import download_once
    from pytest_crbench.datasets.catalog import (RegistryEntry, check_name, check_url,
                                                 normalize_hash)
    from pytest_crbench.errors import CRBenchConfigError

    parsed = urlparse(item)
    if parsed.scheme not in ("http", "https", "ftp"):
        source = Path(item).expanduser().resolve()
        if not source.is_file():
            raise CRBenchConfigError(f"{item}: no such file")
        name = check_name(args.name or source.name, where="crbench data add")
        digest = sha256_file(source)
        if args.sha256 and normalize_hash(args.sha256, where="--sha256") != digest:
            raise CRBenchConfigError(
                f"{source}: sha256 is {digest}, not the expected {args.sha256}")
        url = args.url or source.as_uri()
        check_url(url, where="--url")
        return (RegistryEntry(name, digest, url), source,
                _check_product(source, loader=args.loader, shown=item))
    url = check_url(item, where="crbench data add")
    name = check_name(args.name or Path(parsed.path).name or "download",
                      where="crbench data add")
    if "uri=" in parsed.query and not args.name:  # MAST: ...?uri=mast:HST/product/X
        name = check_name(parsed.query.rsplit("/", 1)[-1], where="crbench data add")
    if args.offline:
        if not args.sha256:
            raise CRBenchConfigError(
                f"{item}: --offline needs --sha256 (the hash cannot be computed "
                "without downloading)")
        return RegistryEntry(name, normalize_hash(args.sha256, where="--sha256"), url), None, []
    fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", suffix=".add.part", dir=directory)
    os.close(fd)
    source = Path(tmpname)
    temps.append(source)
    download_once(url, source, timeout=args.timeout, progress=not args.no_progress)
    digest = sha256_file(source)
    if args.sha256 and normalize_hash(args.sha256, where="--sha256") != digest:
        raise CRBenchConfigError(f"{item}: sha256 is {digest}, not the expected {args.sha256}")
    return (RegistryEntry(name, digest, url), source,
            _check_product(source, loader=args.loader, shown=item))


def _check_group_exposures(args, exposures: list) -> None:
    """A scored group needs 2 exposures of each chip, none of them all-zero or far off
    the others' level (that would bias the references): refused now, not at every run."""
    from pytest_crbench.errors import CRBenchConfigError
    from pytest_crbench.science.exposures import Group, check_levels

    per_chip: dict = {}
    for e in exposures:
        per_chip[e.chip] = per_chip.get(e.chip, 0) + 1
    thin = sorted(c for c, n in per_chip.items() if n < 2)
    if thin and args.kind != "crsplit":
        raise CRBenchConfigError(
            f"--group {args.group}: a scored group needs at least 2 exposures "
            f"of each chip; chip(s) {thin} have 1 (add more files, or --smoke "
            "for a smoke-only dataset)")
    for chip in sorted(per_chip):
        members = [e for e in exposures if e.chip == chip]
        try:
            check_levels(Group(args.group, members, kind=args.kind))
        except CRBenchError as exc:
            raise type(exc)(f"refused, nothing was written: {exc}") from None


def cmd_add(args) -> int:
    """Validate everything (names, hashes, FITS contents, groups) first; then install the
    files, the registry and the groups file, each atomically."""
    import shutil
    import tomllib

    from pytest_crbench._util import atomic_write, sha256_file
    from pytest_crbench.datasets.cache import ensure_dir
    from pytest_crbench.datasets.catalog import (
        load_groups, load_registry, parse_groups, plan_registry_entries, plan_user_group,
        user_groups_path, user_registry_path)
    from pytest_crbench.datasets.simulate import PRESETS
    from pytest_crbench.errors import CRBenchConfigError

    directory = ensure_dir(_resolve_dir(args))
    known = load_registry(directory)
    load_groups(directory, registry=known)  # the files as they are must be valid
    if args.sha256 and len(args.items) != 1:
        raise CRBenchConfigError("--sha256 applies to a single FILE or URL")
    if args.dataset and not args.group:
        raise CRBenchConfigError("--dataset needs --group (the group the dataset holds)")
    if args.dataset in PRESETS:
        raise CRBenchConfigError(
            f"--dataset {args.dataset!r} is a simulated preset; choose another name")
    package = load_groups(None, registry=known)
    gpath = user_groups_path(directory)
    entries, installs, temps, exposures = [], [], [], []
    try:
        # 1. every item: name, hash, contents (URLs are downloaded into temporary files)
        for item in args.items:
            entry, source, found = _plan_item(item, args, directory, temps)
            if entry.name in known and known[entry.name].sha256 != entry.sha256:
                raise CRBenchConfigError(
                    f"{entry.name}: already registered ({known[entry.name].source}) with "
                    "another sha256; use --name to give it another name")
            entries.append(entry)
            exposures += found
            if source is not None:
                installs.append((source, directory / entry.name, entry.sha256))
        # 2. the new registry and groups file, validated together
        registry_text = plan_registry_entries(user_registry_path(directory), entries)
        groups_text = None
        if args.group:
            if not args.smoke:
                _check_group_exposures(args, exposures)
            groups_text = plan_user_group(
                gpath, group=args.group, kind=args.kind, files=[e.name for e in entries],
                loader=args.loader, instrument=args.instrument or "", dataset=args.dataset,
                description=args.description or "", scored=not args.smoke, package=package)
            registry = {**known, **{e.name: e for e in entries}}
            parse_groups(tomllib.loads(groups_text), source=str(gpath), registry=registry)
        # 3. write: files, registry, groups — each atomically
        for source, dest, digest in installs:
            if not (dest.is_file() and sha256_file(dest) == digest):
                atomic_write(dest, lambda tmp, _s=source: shutil.copyfile(_s, tmp))
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    reg_path = atomic_write(user_registry_path(directory),
                            lambda tmp: Path(tmp).write_text(registry_text, encoding="utf-8"))
    for e in entries:
        print(f"registered {e.name} {e.sha256} {e.url}")
    print(f"user registry: {reg_path}")
    if groups_text is not None:
        atomic_write(gpath, lambda tmp: Path(tmp).write_text(groups_text, encoding="utf-8"))
        print(f"group {args.group} ({args.kind}) recorded in {gpath}"
              + (f", dataset {args.dataset}" if args.dataset else ""))
    return 0


def cmd_evaluate(args) -> int:
    """Evaluate every configured detector on every configured dataset, run the gate
    checks of ``pytest --crbench`` (same checks, same outputs) and write the outputs."""
    from pytest_crbench.bench.preflight import preflight
    from pytest_crbench.bench.run import BenchSession
    from pytest_crbench.bench.settings import OPTIONS, read_tool_table, resolve
    from pytest_crbench.detectors.specs import check_spec
    from pytest_crbench.reporting.outputs import write_masks, write_outputs
    from pytest_crbench.reporting.terminal import summary_lines

    project = Path(args.project) if args.project else Path.cwd() / "pyproject.toml"
    if args.project and not project.is_file():
        raise CRBenchConfigError(f"--project {project}: no such file")
    tool = read_tool_table(project)
    flags = {o.name: getattr(args, o.name) for o in OPTIONS}
    settings = resolve(flags, tool, {}, tool_file=project if tool else None)
    for spec in settings.detectors:
        check_spec(spec)  # the start-up checks of pytest --crbench
    bench = BenchSession(settings)
    failed, broken = [], {}
    try:
        preflight(bench)
        for check in bench.checks:
            pair = (check.detector, check.dataset)
            if pair in broken:
                continue
            try:
                outcome = bench.check(check)
            except CRBenchError as exc:
                broken[pair] = exc
                failed.append(f"{check.detector} on {check.dataset}: {exc}")
                continue
            if not outcome.passed and not outcome.skip:
                failed.append(outcome.message or f"{check}: failed")
        for line in summary_lines(bench):
            print(line)
        for line in write_masks(bench) + write_outputs(bench):
            print(line)
    finally:
        bench.close()
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"{len(bench.outcomes)} checks, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from pytest_crbench.bench.settings import OPTIONS
    from pytest_crbench.science.exposures import GROUP_KINDS

    parser = argparse.ArgumentParser(prog="crbench", description="pytest-crbench tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="run the benchmark outside pytest (batch jobs)",
                        description=cmd_evaluate.__doc__)
    ev.add_argument("--project", metavar="PATH", help="pyproject.toml whose [tool.crbench] "
                    "supplies the options not given here (default: ./pyproject.toml)")
    for opt in OPTIONS:
        ev.add_argument("--" + opt.name.replace("_", "-"), **opt.argparse_kwargs(opt.name))
    ev.set_defaults(func=cmd_evaluate)
    data = sub.add_parser("data", help="manage the real-data cache",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = data.add_subparsers(dest="action", required=True)

    def common(p):
        p.add_argument("--data-dir", help="cache folder (default: [tool.crbench] data_dir, "
                       "$CRBENCH_DATA_DIR, or the platform cache)")
        p.add_argument("--offline", action="store_true", help="never touch the network")
        p.add_argument("--timeout", type=float, default=30.0,
                       help="network timeout in seconds (default 30)")
        p.add_argument("--no-progress", action="store_true", help="no download progress bar")
        p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                       help="how long to wait for a cache lock held by another process "
                       "(default 600)")
        return p

    p = common(dsub.add_parser("list", help="datasets, files, cached or not, sizes"))
    p.set_defaults(func=cmd_list)
    p = common(dsub.add_parser("fetch", help="download datasets or files into the cache"))
    p.add_argument("targets", nargs="+", metavar="NAME",
                   help="dataset, group or file name ('all' = every registered file)")
    p.set_defaults(func=cmd_fetch)
    p = common(dsub.add_parser("verify", help="re-hash the cache; delete corrupted files"))
    p.add_argument("targets", nargs="*", metavar="NAME", help="limit to these (default all)")
    p.set_defaults(func=cmd_verify)
    p = common(dsub.add_parser("seed", help="fill the cache from a local folder (hash-checked)"))
    p.add_argument("source", metavar="DIR")
    p.add_argument("targets", nargs="*", metavar="NAME", help="limit to these (default all)")
    p.set_defaults(func=cmd_seed)
    p = common(dsub.add_parser("add", help="record own files or archive addresses with their "
                                           "sha256 in the user registry"))
    p.add_argument("items", nargs="+", metavar="FILE_OR_URL")
    p.add_argument("--sha256", help="expected sha256 (required with --offline for a URL)")
    p.add_argument("--name", help="name in the cache (single item)")
    p.add_argument("--url", help="download address to record for a local FILE "
                                 "(default: its file:// address)")
    p.add_argument("--group", help="also declare these files as a group")
    p.add_argument("--kind", default="pointing", choices=GROUP_KINDS)
    p.add_argument("--loader", default="auto",
                   choices=("auto", "flt", "stis_raw", "wfpc2_c0f", "acs_raw"))
    p.add_argument("--instrument")
    p.add_argument("--dataset", help="add the group to this user dataset (created if new)")
    p.add_argument("--description")
    p.add_argument("--smoke", action="store_true", help="the dataset is smoke-only (not scored)")
    p.set_defaults(func=cmd_add)
    from pytest_crbench.compare_runs import add_parser

    add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "name", None) and len(getattr(args, "items", [])) > 1:
        parser.error("--name applies to a single FILE or URL")
    try:
        return args.func(args)
    except CRBenchError as exc:
        print(f"crbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
