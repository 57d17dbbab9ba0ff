"""``crbench`` command line: ``crbench evaluate`` and ``crbench data list|fetch|verify|add|seed``.

    crbench evaluate --model deepcr:ACS-WFC --dataset sim-full --scheduler tcp://host:8786 \
        --json results.json                 the benchmark outside pytest (batch jobs on a
                                            cluster): the same evaluation, the same JSON,
                                            report and floors as ``pytest --crbench``

    crbench data list                       datasets, their files, cached or not, sizes
    crbench data fetch stis-crsplit [...]   download datasets or single files (hash-checked)
    crbench data verify                     re-hash the cache; corrupted files are deleted
    crbench data seed DIR                   fill the cache from a local folder (hash-checked)
    crbench data add FILE|URL ... [--sha256 H] [--group G --kind K [--dataset D]]
                                            record own files / archive addresses with their
                                            hashes in the user registry (and groups)

Common options: ``--data-dir DIR`` (else ``[tool.crbench] data_dir`` of the nearest
pyproject.toml, else ``$CRBENCH_DATA_DIR``, else the platform cache) and ``--offline``.
Exit status: 0 success, 1 a data problem (missing, corrupted, refused) or, for
``evaluate``, a floor not met or a detector that failed; 2 usage error.

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
                  progress=not args.no_progress, dataset=dataset, timeout=args.timeout)
    print(f"{len(paths)} file(s) in {directory} ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_verify(args) -> int:
    from pytest_crbench.datasets.cache import verify

    directory = _resolve_dir(args)
    names = _names_for(args.targets, directory)[0] if args.targets else None
    t0 = time.perf_counter()
    report = verify(data_dir=directory, names=names)
    for name in report.good:
        print(f"ok       {name}")
    for name, actual in report.removed.items():
        print(f"CORRUPT  {name} (sha256 {actual}) — deleted; fetch it again with "
              f"`crbench data fetch {name}`")
    print(f"{len(report.good)} good, {len(report.removed)} corrupted (deleted), "
          f"{len(report.absent)} not cached ({time.perf_counter() - t0:.1f} s)")
    return 0 if report.ok else 1


def cmd_seed(args) -> int:
    from pytest_crbench.datasets.cache import seed

    directory = _resolve_dir(args)
    names = _names_for(args.targets, directory)[0] if args.targets else None
    t0 = time.perf_counter()
    report = seed(args.source, data_dir=directory, names=names)
    for name in report.copied:
        print(f"copied   {name}")
    for name, why in report.bad.items():
        print(f"REFUSED  {name}: {why}")
    print(f"{len(report.copied)} copied, {len(report.present)} already cached, "
          f"{len(report.bad)} refused (hash mismatch), {len(report.absent)} not in {args.source}, "
          f"{len(report.unregistered)} unregistered file(s) ignored "
          f"({time.perf_counter() - t0:.1f} s) → {directory}")
    return 0 if report.ok else 1


def cmd_add(args) -> int:
    from urllib.parse import urlparse

    from pytest_crbench._util import atomic_write, sha256_file
    from pytest_crbench.datasets.cache import download, file_lock
    from pytest_crbench.errors import CRBenchConfigError
    from pytest_crbench.datasets.catalog import (
        RegistryEntry, add_registry_entries, add_user_group, check_name, check_url,
        load_registry, normalize_hash, user_groups_path, user_registry_path)

    directory = _resolve_dir(args)
    directory.mkdir(parents=True, exist_ok=True)
    known = load_registry(directory)
    if args.sha256 and len(args.items) != 1:
        raise CRBenchConfigError("--sha256 applies to a single FILE or URL")
    entries = []
    for item in args.items:
        parsed = urlparse(item)
        if parsed.scheme in ("http", "https", "ftp"):
            url = check_url(item, where="crbench data add")
            name = check_name(args.name or Path(parsed.path).name or "download",
                              where="crbench data add")
            if "uri=" in parsed.query and not args.name:  # MAST: ...?uri=mast:HST/product/X
                name = check_name(parsed.query.rsplit("/", 1)[-1], where="crbench data add")
            if args.sha256:
                digest = normalize_hash(args.sha256, where="--sha256")
                if not args.offline:
                    with file_lock(directory, name):
                        download(name, url, digest, directory, timeout=args.timeout,
                                 progress=not args.no_progress)
            else:
                if args.offline:
                    raise CRBenchConfigError(
                        f"{item}: --offline needs --sha256 (the hash cannot be computed "
                        "without downloading)")
                # Trust on first use: download, hash, record.
                from pytest_crbench.datasets.cache import _download_once

                tmp = directory / f".{name}.add.part"
                try:
                    _download_once(url, tmp, timeout=args.timeout, progress=not args.no_progress)
                    digest = sha256_file(tmp)
                    os.replace(tmp, directory / name)
                finally:
                    tmp.unlink(missing_ok=True)
                print(f"downloaded {name}: sha256 {digest} (recorded on first use)")
        else:
            path = Path(item).expanduser().resolve()
            if not path.is_file():
                raise CRBenchConfigError(f"{item}: no such file")
            name = check_name(args.name or path.name, where="crbench data add")
            digest = sha256_file(path)
            if args.sha256 and normalize_hash(args.sha256, where="--sha256") != digest:
                raise CRBenchConfigError(
                    f"{path}: sha256 is {digest}, not the expected {args.sha256}")
            url = args.url or path.as_uri()
            check_url(url, where="--url")
            dest = directory / name
            if not dest.exists() or sha256_file(dest) != digest:
                import shutil

                atomic_write(dest, lambda tmp, _p=path: shutil.copyfile(_p, tmp))
        if name in known and known[name].sha256 != digest:
            raise CRBenchConfigError(
                f"{name}: already registered ({known[name].source}) with another sha256; "
                "use --name to give it another name")
        entries.append(RegistryEntry(name, digest, url))
    reg_path = add_registry_entries(user_registry_path(directory), entries)
    for e in entries:
        print(f"registered {e.name} {e.sha256} {e.url}")
    print(f"user registry: {reg_path}")
    if args.group:
        gpath = add_user_group(
            user_groups_path(directory), group=args.group, kind=args.kind,
            files=[e.name for e in entries], loader=args.loader,
            instrument=args.instrument or "", dataset=args.dataset,
            description=args.description or "", scored=not args.smoke)
        from pytest_crbench.datasets.catalog import load_groups

        load_groups(directory)  # full validation against the registry
        print(f"group {args.group} ({args.kind}) recorded in {gpath}"
              + (f", dataset {args.dataset}" if args.dataset else ""))
    return 0


def cmd_evaluate(args) -> int:
    """Evaluate every configured detector on every configured dataset, run the gate
    checks of ``pytest --crbench`` (same checks, same outputs) and write the outputs."""
    from pytest_crbench.bench.run import BenchSession
    from pytest_crbench.bench.settings import OPTIONS, read_tool_table, resolve
    from pytest_crbench.reporting.outputs import write_masks, write_outputs
    from pytest_crbench.reporting.terminal import summary_lines

    project = Path(args.project) if args.project else Path.cwd() / "pyproject.toml"
    if args.project and not project.is_file():
        raise CRBenchConfigError(f"--project {project}: no such file")
    tool = read_tool_table(project)
    flags = {o.name: getattr(args, o.name) for o in OPTIONS}
    bench = BenchSession(resolve(flags, tool, {}, tool_file=project if tool else None))
    failed, broken = [], {}
    try:
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

    parser = argparse.ArgumentParser(prog="crbench", description="pytest-crbench tools")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="run the benchmark outside pytest (batch jobs)",
                        description=cmd_evaluate.__doc__)
    ev.add_argument("--project", metavar="PATH", help="pyproject.toml whose [tool.crbench] "
                    "supplies the options not given here (default: ./pyproject.toml)")
    for opt in OPTIONS:
        kwargs = dict(dest=opt.name, default=None, help=opt.help)
        if opt.convert.__name__ == "_bool":
            kwargs.update(action="store_const", const=True)
        else:
            kwargs.update(action="append" if opt.repeat else "store", metavar=opt.metavar)
        ev.add_argument("--" + opt.name.replace("_", "-"), **kwargs)
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
    p.add_argument("--kind", default="pointing", choices=("crsplit", "pointing", "dithered"))
    p.add_argument("--loader", default="auto",
                   choices=("auto", "flt", "stis_raw", "wfpc2_c0f", "acs_raw"))
    p.add_argument("--instrument")
    p.add_argument("--dataset", help="add the group to this user dataset (created if new)")
    p.add_argument("--description")
    p.add_argument("--smoke", action="store_true", help="the dataset is smoke-only (not scored)")
    p.set_defaults(func=cmd_add)
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
