"""The data registry (which files exist, their sha256 and address) and the groups file.

Two kinds of registry files share one format, the one of :mod:`pooch` (``pooch.Pooch.
load_registry`` reads them)::

    # comment
    NAME  SHA256  URL

* the package registry ``data_registry.txt`` (the real HST frames, shipped with the code);
* a *user registry* (``crbench data add`` writes it): a team's own files or archive
  addresses with their hashes.  Its location: ``$CRBENCH_USER_REGISTRY``, else
  ``<data dir>/user_registry.txt``.  Its URL column may also be a ``file://`` address.

Groups — which files form a group, of what kind, instrument and dates — are declared in
``pytest_crbench/data/groups.toml`` (documented in that file) and, for a team's own
groups, in a user groups file next to the user registry (``user_groups.toml``).  Both are
validated on load: every error names the file, the line or table, and what is wrong.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

from pytest_crbench.datasets.hst import LOADER_NAMES
from pytest_crbench.errors import CRBenchConfigError
from pytest_crbench.science.exposures import GROUP_KINDS

__all__ = ["PACKAGE_DIR", "GROUPS_FILE", "RegistryEntry", "default_registry_path",
           "user_registry_path", "user_groups_path", "normalize_hash", "check_name",
           "check_url", "parse_registry", "read_registry_file", "load_registry",
           "format_entry", "plan_registry_entries", "GroupSpec", "DatasetSpec",
           "GroupsFile", "parse_groups", "read_groups_file", "load_groups",
           "plan_user_group", "add_user_group"]

PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: The groups file shipped with the package.
GROUPS_FILE = PACKAGE_DIR / "data" / "groups.toml"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

#: Group kinds (see :class:`pytest_crbench.science.exposures.Group`).
#: Loaders of :mod:`pytest_crbench.datasets.hst`, by the name used in groups files.


@dataclass(frozen=True)
class RegistryEntry:
    """One registered file: its name in the cache, sha256 (lower-case hex) and address."""

    name: str
    sha256: str
    url: str
    source: str = ""  # "registry-file:line" where it was declared


def default_registry_path() -> Path:
    """The package registry ``pytest_crbench/data/data_registry.txt`` (shipped as package
    data; the repository's top-level ``data_registry.txt`` is a symbolic link to it)."""
    path = PACKAGE_DIR / "data" / "data_registry.txt"
    if not path.is_file():
        raise CRBenchConfigError(
            f"the package registry {path} was not found; reinstall pytest-crbench")
    return path


def user_registry_path(data_dir: str | os.PathLike) -> Path:
    """Where the user registry lives: ``$CRBENCH_USER_REGISTRY`` or ``<data_dir>/user_registry.txt``."""
    env = os.environ.get("CRBENCH_USER_REGISTRY")
    return Path(env) if env else Path(data_dir) / "user_registry.txt"


def user_groups_path(data_dir: str | os.PathLike) -> Path:
    """The user groups file: next to the user registry, named ``user_groups.toml``."""
    return user_registry_path(data_dir).with_name("user_groups.toml")


def normalize_hash(value: str, *, where: str) -> str:
    """``sha256:HEX`` or ``HEX`` → lower-case hex; anything else is an error naming ``where``."""
    text = value.strip()
    if ":" in text:
        algo, _, text = text.partition(":")
        if algo.lower() != "sha256":
            raise CRBenchConfigError(f"{where}: hash algorithm {algo!r} is not supported; use sha256")
    text = text.lower()
    if not _HEX64.match(text):
        raise CRBenchConfigError(
            f"{where}: {value!r} is not a sha256 hash (64 hexadecimal digits expected)"
        )
    return text


def check_name(name: str, *, where: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise CRBenchConfigError(
            f"{where}: file name {name!r} is not allowed (plain file name: letters, digits, "
            "'.', '_', '+', '-'; no folders)"
        )
    return name


def check_url(url: str, *, where: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https", "ftp") and parsed.netloc:
        return url
    if parsed.scheme == "file" and parsed.path:
        return url
    raise CRBenchConfigError(
        f"{where}: {url!r} is not a download address (expected http://, https://, ftp:// "
        "or file:// followed by a host or path)"
    )


def parse_registry(text: str, *, source: str = "<registry>") -> dict[str, RegistryEntry]:
    """Parse registry text (``NAME SHA256 URL`` lines); raise naming ``source:line``."""
    entries: dict[str, RegistryEntry] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{lineno}"
        try:
            fields = shlex.split(line)
        except ValueError as exc:
            raise CRBenchConfigError(f"{where}: cannot split the line ({exc})") from None
        if len(fields) != 3:
            raise CRBenchConfigError(
                f"{where}: expected 'NAME SHA256 URL' (3 fields), got {len(fields)}: {line!r}"
            )
        name, digest, url = fields
        check_name(name, where=where)
        digest = normalize_hash(digest, where=f"{where} ({name})")
        check_url(url, where=f"{where} ({name})")
        if name in entries:
            raise CRBenchConfigError(
                f"{where}: {name!r} is registered twice (first at {entries[name].source})"
            )
        entries[name] = RegistryEntry(name, digest, url, where)
    return entries


def read_registry_file(path: str | os.PathLike) -> dict[str, RegistryEntry]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CRBenchConfigError(f"{path}: registry file not found") from None
    return parse_registry(text, source=str(path))


def load_registry(data_dir: str | os.PathLike | None = None, *,
                  package: str | os.PathLike | None = None) -> dict[str, RegistryEntry]:
    """The package registry merged with the user registry of ``data_dir`` (if any).

    A user entry may not redefine a package file with a different hash.
    """
    entries = read_registry_file(package or default_registry_path())
    if data_dir is not None:
        upath = user_registry_path(data_dir)
        if upath.is_file():
            for name, entry in read_registry_file(upath).items():
                old = entries.get(name)
                if old is not None and old.sha256 != entry.sha256:
                    raise CRBenchConfigError(
                        f"{entry.source}: {name!r} is already registered at {old.source} with "
                        "another sha256; choose another name"
                    )
                entries[name] = entry
    return entries


def format_entry(entry: RegistryEntry) -> str:
    url = entry.url if not any(c.isspace() for c in entry.url) else shlex.quote(entry.url)
    return f"{entry.name} {entry.sha256} {url}"


def plan_registry_entries(path: str | os.PathLike, new: Iterable[RegistryEntry]) -> str:
    """The text of the user registry ``path`` with ``new`` added (or replaced, same
    name); nothing is written."""
    path = Path(path)
    existing = read_registry_file(path) if path.is_file() else {}
    header = ("# pytest-crbench user registry (pooch format: NAME SHA256 URL), "
              "written by `crbench data add`\n")
    for entry in new:
        existing[entry.name] = entry
    return header + "".join(format_entry(e) + "\n" for e in existing.values())


# --------------------------------------------------------------------------- groups


@dataclass
class GroupSpec:
    """One group as declared in a groups file."""

    name: str
    kind: str
    files: list[str]
    loader: str = "auto"
    instrument: str = ""
    date_obs: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)   # fetched + hashed, not loaded (e.g. _asn)
    chips: list[int] | None = None                   # restrict to these chips/imsets (1-based)
    usable: bool = True
    reason: str = ""
    notes: str = ""
    source: str = ""

    @property
    def all_files(self) -> list[str]:
        return list(self.files) + list(self.extra)


@dataclass
class DatasetSpec:
    name: str
    description: str
    groups: list[str]
    scored: bool = True
    version: str = ""
    notes: str = ""
    source: str = ""


@dataclass
class GroupsFile:
    groups: dict[str, GroupSpec]
    datasets: dict[str, DatasetSpec]
    sources: list[str] = field(default_factory=list)

    def dataset_files(self, name: str) -> list[str]:
        ds = self.datasets[name]
        out: list[str] = []
        for g in ds.groups:
            for f in self.groups[g].all_files:
                if f not in out:
                    out.append(f)
        return out


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GROUP_KEYS = {"kind", "files", "loader", "instrument", "date_obs", "extra", "chips",
               "usable", "reason", "notes"}
_DATASET_KEYS = {"description", "groups", "scored", "version", "notes"}


def _str_list(value: Any, *, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CRBenchConfigError(f"{where}: {key!r} must be a list of strings, got {value!r}")
    return value


def _check_table(table, where: str, allowed: set[str]) -> None:
    """``table`` must be a TOML table holding only ``allowed`` keys."""
    if not isinstance(table, dict):
        raise CRBenchConfigError(f"{where}: must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise CRBenchConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def parse_groups(data: dict, *, source: str, registry: dict[str, RegistryEntry] | None
                 ) -> GroupsFile:
    """Validate a parsed groups TOML document (see ``data/groups.toml`` for the schema)."""
    schema = data.get("schema", 1)
    if schema != 1:
        raise CRBenchConfigError(f"{source}: schema = {schema!r} is not supported (expected 1)")
    unknown_top = set(data) - {"schema", "groups", "datasets"}
    if unknown_top:
        raise CRBenchConfigError(f"{source}: unknown top-level key(s) {sorted(unknown_top)}")
    groups: dict[str, GroupSpec] = {}
    for gname, table in (data.get("groups") or {}).items():
        where = f"{source} [groups.{gname}]"
        _check_table(table, where, _GROUP_KEYS)
        kind = table.get("kind")
        if kind not in GROUP_KINDS:
            raise CRBenchConfigError(
                f"{where}: kind = {kind!r}; expected one of {', '.join(GROUP_KINDS)}")
        if "files" not in table:
            raise CRBenchConfigError(f"{where}: the 'files' key is missing")
        files = _str_list(table["files"], where=where, key="files")
        extra = _str_list(table.get("extra", []), where=where, key="extra")
        if not files:
            raise CRBenchConfigError(f"{where}: 'files' is empty")
        loader = table.get("loader", "auto")
        if loader not in LOADER_NAMES:
            raise CRBenchConfigError(
                f"{where}: loader = {loader!r}; expected one of {', '.join(LOADER_NAMES)}")
        dates = _str_list(table.get("date_obs", []), where=where, key="date_obs")
        for d in dates:
            if not _DATE.match(d):
                raise CRBenchConfigError(f"{where}: date_obs {d!r} is not YYYY-MM-DD")
        chips = table.get("chips")
        if chips is not None and (not isinstance(chips, list)
                                  or not all(isinstance(c, int) and c >= 1 for c in chips)):
            raise CRBenchConfigError(f"{where}: 'chips' must be a list of integers >= 1")
        usable = table.get("usable", True)
        if not isinstance(usable, bool):
            raise CRBenchConfigError(f"{where}: 'usable' must be true or false")
        if not usable and not table.get("reason"):
            raise CRBenchConfigError(f"{where}: an unusable group needs a 'reason'")
        if kind == "crsplit" and len(files) != 1 and loader == "stis_raw":
            raise CRBenchConfigError(
                f"{where}: a STIS crsplit group is one _raw file holding both imsets")
        for f in files + extra:
            check_name(f, where=where)
            if registry is not None and f not in registry:
                raise CRBenchConfigError(
                    f"{where}: file {f!r} is not in the registry; register it first "
                    f"(`crbench data add`) or fix the name")
        groups[gname] = GroupSpec(
            name=gname, kind=kind, files=files, loader=loader,
            instrument=str(table.get("instrument", "")), date_obs=dates, extra=extra,
            chips=chips, usable=usable, reason=str(table.get("reason", "")),
            notes=str(table.get("notes", "")), source=where)
    datasets: dict[str, DatasetSpec] = {}
    for dname, table in (data.get("datasets") or {}).items():
        where = f"{source} [datasets.{dname}]"
        _check_table(table, where, _DATASET_KEYS)
        members = _str_list(table.get("groups", []), where=where, key="groups")
        if not members:
            raise CRBenchConfigError(f"{where}: 'groups' is empty")
        for g in members:
            if g not in groups:
                raise CRBenchConfigError(f"{where}: group {g!r} is not declared in [groups]")
            if not groups[g].usable:
                raise CRBenchConfigError(
                    f"{where}: group {g!r} is marked unusable ({groups[g].reason})")
        scored = table.get("scored", True)
        if not isinstance(scored, bool):
            raise CRBenchConfigError(f"{where}: 'scored' must be true or false")
        if "description" not in table:
            raise CRBenchConfigError(f"{where}: the 'description' key is missing")
        datasets[dname] = DatasetSpec(
            name=dname, description=str(table["description"]), groups=members, scored=scored,
            version=str(table.get("version", "")), notes=str(table.get("notes", "")),
            source=where)
    return GroupsFile(groups, datasets, [source])


def read_groups_file(path: str | os.PathLike, *, registry: dict[str, RegistryEntry] | None
                     ) -> GroupsFile:
    from pytest_crbench._util import read_toml

    path = Path(path)
    data = read_toml(path, "groups file")
    return parse_groups(data, source=str(path), registry=registry)


def load_groups(data_dir: str | os.PathLike | None = None, *,
                registry: dict[str, RegistryEntry] | None = None,
                groups_file: str | os.PathLike | None = None) -> GroupsFile:
    """The package groups file merged with the user groups file of ``data_dir`` (if any)."""
    if registry is None:
        registry = load_registry(data_dir)
    merged = read_groups_file(groups_file or GROUPS_FILE, registry=registry)
    if data_dir is not None:
        upath = user_groups_path(data_dir)
        if upath.is_file():
            user = read_groups_file(upath, registry=registry)
            for kind in ("groups", "datasets"):
                mine, theirs = getattr(merged, kind), getattr(user, kind)
                clash = set(mine) & set(theirs)
                if clash:
                    raise CRBenchConfigError(
                        f"{upath}: {kind} {sorted(clash)} already declared by the package; "
                        "choose other names")
                mine.update(theirs)
            merged.sources += user.sources
    return merged


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_user_group(path: str | os.PathLike, *, group: str, kind: str, files: list[str],
                    loader: str = "auto", instrument: str = "", dataset: str | None = None,
                    description: str = "", scored: bool = True,
                    package: GroupsFile | None = None) -> str:
    """The text of the user groups file ``path`` with one more group (and optionally a
    dataset holding it), validated; nothing is written.

    Refused, naming the file and the name: a group or dataset name the package already
    uses (``package``), a group already declared in the file, names with other characters
    than letters, digits, ``_`` and ``-``, and a file that is not valid TOML today.
    """
    path = Path(path)
    for what, value in (("group", group), ("dataset", dataset)):
        if value is not None and not re.match(r"^[A-Za-z0-9_-]+$", value):
            raise CRBenchConfigError(
                f"--{what} {value!r}: use letters, digits, '_' and '-'")
    if package is not None:
        if group in package.groups:
            raise CRBenchConfigError(
                f"--group {group!r}: the package already declares a group of that name "
                f"({package.groups[group].source}); choose another name")
        if dataset in package.datasets:
            raise CRBenchConfigError(
                f"--dataset {dataset!r}: the package already declares a dataset of that "
                f"name ({package.datasets[dataset].source}); choose another name")
    text = path.read_text(encoding="utf-8") if path.is_file() else (
        "# pytest-crbench user groups (schema: see pytest_crbench/data/groups.toml), "
        "written by `crbench data add`\nschema = 1\n")
    try:
        current = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CRBenchConfigError(f"{path}: not valid TOML ({exc}); fix or delete it") from None
    if group in (current.get("groups") or {}):
        raise CRBenchConfigError(
            f"--group {group!r} is already declared in {path}; choose another name (or "
            "edit that file to change the group)")
    text += (f"\n[groups.{group}]\nkind = {_toml_str(kind)}\nloader = {_toml_str(loader)}\n"
             f"instrument = {_toml_str(instrument)}\n"
             f"files = [{', '.join(_toml_str(f) for f in files)}]\n")
    if dataset:
        ds = (current.get("datasets") or {}).get(dataset)
        if ds is None:
            text += (f"\n[datasets.{dataset}]\n"
                     f"description = {_toml_str(description or 'user dataset')}\n"
                     f"scored = {'true' if scored else 'false'}\ngroups = [{_toml_str(group)}]\n")
        else:
            # Rewrite the dataset's groups line (it is the one we wrote).
            old = "groups = [" + ", ".join(_toml_str(g) for g in ds["groups"]) + "]"
            new = "groups = [" + ", ".join(_toml_str(g) for g in ds["groups"] + [group]) + "]"
            head, sep, tail = text.partition(f"[datasets.{dataset}]")
            if old not in tail:
                raise CRBenchConfigError(
                    f"{path} [datasets.{dataset}]: its groups line was edited by hand; add "
                    f"{group!r} to it there")
            text = head + sep + tail.replace(old, new, 1)
    try:
        parse_groups(tomllib.loads(text), source=str(path), registry=None)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - names are checked above
        raise CRBenchConfigError(f"{path}: the change would make invalid TOML ({exc})") from None
    return text


def add_user_group(path: str | os.PathLike, **group) -> Path:
    """Append a group (and optionally a dataset holding it) to the user groups file,
    atomically, after :func:`plan_user_group` validated it."""
    from pytest_crbench._util import atomic_write

    text = plan_user_group(path, **group)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
