"""The local cache of real data files: location, hash-verified downloads, locking, seeding.

* Location (:func:`data_dir`): an explicit folder (``--crbench-data-dir`` or ``[tool.crbench]
  data_dir``) > ``$CRBENCH_DATA_DIR`` > the platform cache (``pooch.os_cache("pytest-crbench")``).
* Every file in the cache has been hashed against the registry before it got its final
  name: downloads and copies land in a temporary file in the cache folder, are hashed, and
  are renamed into place only when the sha256 matches (one atomic rename).  A corrupted or
  truncated file is deleted and reported, never kept.  A sidecar stamp
  ``.crbench-hashes.json`` remembers (size, mtime) of verified files so that big files are
  not re-hashed on every run; ``crbench data verify`` re-hashes everything.
* Concurrency: one ``fcntl.flock`` lock file per data file (``.locks/NAME.lock``); several
  pytest-xdist workers asking for the same file download it once — the others wait, then
  find it in place.
* Offline mode never touches the network: missing files raise
  :class:`~pytest_crbench.errors.CRBenchMissingDataError` listing them and the commands
  that fetch (``crbench data fetch …``) or seed (``crbench data seed DIR``) them.

``import pytest_crbench.datasets.cache`` is cheap: pooch (and requests) are imported on first download.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlparse

from pytest_crbench._util import sha256_file
from pytest_crbench.errors import CRBenchConfigError, CRBenchDataError, CRBenchMissingDataError

__all__ = ["ENV_DATA_DIR", "DEFAULT_TIMEOUT", "DEFAULT_RETRIES", "data_dir",
           "config_data_dir", "file_lock", "is_cached", "download", "download_once",
           "missing_message", "fetch", "SeedReport", "seed", "VerifyReport", "verify",
           "status"]

ENV_DATA_DIR = "CRBENCH_DATA_DIR"
#: Seconds the downloader waits for the server (connect and each read).
DEFAULT_TIMEOUT = 30.0
#: Extra download attempts after a failure (HTTP 5xx, connection reset, truncation).
DEFAULT_RETRIES = 2
_STAMPS = ".crbench-hashes.json"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``explicit`` > ``$CRBENCH_DATA_DIR`` > platform cache.

    ``explicit`` is what ``--crbench-data-dir`` or ``[tool.crbench] data_dir`` gave
    (``~`` and environment variables are expanded).  The folder is not created here.
    """
    for value in (explicit, os.environ.get(ENV_DATA_DIR)):
        if value is not None and str(value).strip():
            return Path(os.path.expandvars(os.path.expanduser(str(value)))).resolve()
    import pooch  # noqa: PLC0415 (lazy: keeps this module cheap to import)

    return Path(pooch.os_cache("pytest-crbench"))


def config_data_dir(start: str | os.PathLike | None = None) -> str | None:
    """``[tool.crbench] data_dir`` of the nearest ``pyproject.toml`` at or above ``start``
    (relative paths are relative to that file's folder), or ``None``."""
    from pytest_crbench._util import read_toml

    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pp = folder / "pyproject.toml"
        if pp.is_file():
            conf = read_toml(pp, "project file")
            value = conf.get("tool", {}).get("crbench", {}).get("data_dir")
            if value is None:
                return None
            if not isinstance(value, str):
                raise CRBenchConfigError(f"{pp}: [tool.crbench] data_dir must be a string")
            value = os.path.expandvars(os.path.expanduser(value))
            return str((folder / value).resolve()) if not os.path.isabs(value) else value
    return None


# ------------------------------------------------------------------ locks and stamps


#: Seconds a process waits for a lock held by another one (``--crbench-lock-timeout``).
DEFAULT_LOCK_TIMEOUT = 600.0
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def is_read_only_error(exc: BaseException) -> bool:
    """True for the OSErrors of a folder we may not write (read-only mount, permissions)."""
    return isinstance(exc, OSError) and exc.errno in _READ_ONLY


def ensure_dir(directory: Path, *, what: str = "data folder") -> Path:
    """Create ``directory`` (and parents); errors name the folder and what is in the way."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (directory, *directory.parents)
                        if p.exists() and not p.is_dir()), directory)
        raise CRBenchDataError(
            f"{what} {directory}: cannot create it: {blocker} is a file, not a folder; "
            "choose another folder (--crbench-data-dir, $CRBENCH_DATA_DIR)") from None
    except OSError as exc:
        raise CRBenchDataError(
            f"{what} {directory}: cannot create it ({exc.strerror})") from None
    return directory


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def lock_holder(path: Path) -> str:
    """Who holds the lock file ``path``, as its holder wrote it ("pid N on HOST")."""
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        pid, host = "", ""
    if pid.isdigit():
        return f"pid {pid}" + (f" on {host}" if host else "")
    return "another process (pid not recorded)"


@contextlib.contextmanager
def file_lock(directory: Path, name: str, *, timeout: float | None = None, notify=None,
              path: Path | None = None):
    """Exclusive lock for ``name`` in ``directory`` (``fcntl.flock`` on
    ``.locks/NAME.lock``, or on ``path``).  Held across processes: xdist workers
    serialize on it.  The holder writes its pid into the file.

    * A lock held by another process: ``notify`` (default: stderr) is told once which
      file and which pid it waits for; after ``timeout`` seconds (default
      :data:`DEFAULT_LOCK_TIMEOUT`) :class:`CRBenchDataError` names both.
    * A folder we may not write (a shared read-only cache) cannot be changed by us, so
      readers need no lock there: the lock is skipped (installs are atomic renames).
    * No ``fcntl`` (Windows): no lock.
    """
    lockfile = path if path is not None else directory / ".locks" / f"{name}.lock"
    try:
        lockfile.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lockfile, "a+")
    except OSError as exc:
        if is_read_only_error(exc):
            yield None
            return
        raise CRBenchDataError(f"lock file {lockfile}: cannot open it ({exc})") from None
    try:
        import fcntl  # noqa: PLC0415
    except ImportError:  # pragma: no cover - Windows
        fh.close()
        yield None
        return
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            limit = DEFAULT_LOCK_TIMEOUT if timeout is None else float(timeout)
            holder = lock_holder(lockfile)
            (notify or _stderr)(
                f"crbench: waiting for the lock {lockfile}, held by {holder} "
                f"(giving up after {limit:g} s; --crbench-lock-timeout)")
            deadline = time.monotonic() + limit
            while True:
                time.sleep(min(0.2, max(limit, 0.0)))
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = lock_holder(lockfile)
                        raise CRBenchDataError(
                            f"lock file {lockfile} is still held by {holder} after "
                            f"{limit:g} s; if that process is hung, stop it and run again "
                            "(or wait longer: --crbench-lock-timeout SECONDS)") from None
        try:
            import socket  # noqa: PLC0415

            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()} {socket.gethostname()}\n")
            fh.flush()
        except OSError:
            pass
        try:
            yield lockfile
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_stamps(directory: Path) -> dict:
    try:
        return json.loads((directory / _STAMPS).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _update_stamp(directory: Path, name: str, digest: str | None) -> None:
    from pytest_crbench._util import atomic_write

    if not os.access(directory, os.W_OK):
        return  # a read-only cache: the stamp is an optimisation, the hash was checked
    with file_lock(directory, _STAMPS):
        stamps = _read_stamps(directory)
        if digest is None:
            stamps.pop(name, None)
        else:
            st = (directory / name).stat()
            stamps[name] = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        text = json.dumps(stamps, indent=1, sort_keys=True)
        atomic_write(directory / _STAMPS, lambda tmp: Path(tmp).write_text(text))


def _stamp_ok(directory: Path, name: str, digest: str) -> bool:
    stamp = _read_stamps(directory).get(name)
    if not stamp or stamp.get("sha256") != digest:
        return False
    try:
        st = (directory / name).stat()
    except FileNotFoundError:
        return False
    return stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns


def is_cached(name: str, digest: str, directory: Path, *, rehash: bool = False) -> bool:
    """True if ``directory/name`` exists with the right sha256.  A file whose stamp matches
    is trusted unless ``rehash``; otherwise it is hashed, and a mismatch deletes it."""
    path = directory / name
    if not path.is_file():
        return False
    if not rehash and _stamp_ok(directory, name, digest):
        return True
    actual = sha256_file(path)
    if actual == digest:
        _update_stamp(directory, name, digest)
        return True
    _remove_corrupted(path, actual, digest)
    return False


def _remove_corrupted(path: Path, actual: str, expected: str) -> None:
    """Delete a cached file whose sha256 is wrong; in a read-only cache, say so."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise CRBenchDataError(
            f"{path}: sha256 is {actual}, expected {expected} (corrupted), and it cannot be "
            f"removed ({exc.strerror}): ask the owner of the cache to run "
            f"`crbench data verify --data-dir {path.parent}`") from None
    _update_stamp(path.parent, path.name, None)


# ------------------------------------------------------------------ downloads


def _install(tmp: Path, dest: Path, expected: str, *, origin: str) -> None:
    """Hash ``tmp``; rename it onto ``dest`` if it matches, else delete it and raise."""
    actual = sha256_file(tmp)
    if actual != expected:
        size = tmp.stat().st_size
        tmp.unlink(missing_ok=True)
        raise CRBenchDataError(
            f"{dest.name}: sha256 mismatch for the file from {origin} ({size} bytes): "
            f"expected {expected}, got {actual}; the file was corrupted or truncated and "
            "was not kept in the cache")
    os.replace(tmp, dest)
    _update_stamp(dest.parent, dest.name, expected)


def download_once(url: str, tmp: Path, *, timeout: float, progress) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        src = Path(unquote(parsed.path))
        if not src.is_file():
            raise FileNotFoundError(f"{src}: no such file")
        shutil.copyfile(src, tmp)
        return
    import pooch  # noqa: PLC0415 (lazy)

    if parsed.scheme in ("http", "https"):
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout,
                                          chunk_size=1 << 16)
    else:
        downloader = pooch.downloaders.choose_downloader(url, progressbar=progress)
    downloader(url, str(tmp), None)


def _is_transient(exc: BaseException) -> bool:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status >= 500 or status == 429
    name = type(exc).__name__
    return name in ("ConnectionError", "ChunkedEncodingError", "ContentDecodingError",
                    "ProtocolError", "IncompleteRead", "CRBenchDataError")


def download(name: str, url: str, sha256: str, directory: Path, *,
             timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
             progress=True, backoff: float = 0.5) -> Path:
    """Download ``url`` into ``directory/name``, verify its sha256, and rename it into place.

    Transient failures (HTTP 5xx, connection reset, truncated body / hash mismatch) are
    retried ``retries`` times; a timeout is not (the server is not answering).  Caller holds
    the lock.  Raises :class:`CRBenchMissingDataError` (network failure) or
    :class:`CRBenchDataError` (hash mismatch); no partial file is left behind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / name
    last: BaseException | None = None
    attempts = 0
    for attempt in range(retries + 1):
        attempts = attempt + 1
        fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        os.close(fd)
        tmp = Path(tmpname)
        try:
            download_once(url, tmp, timeout=timeout, progress=progress)
            _install(tmp, dest, sha256, origin=url)
            return dest
        except CRBenchDataError as exc:
            last = exc
        except Exception as exc:  # requests/pooch/OS errors
            last = exc
            if "Timeout" in type(exc).__name__ or "timed out" in str(exc):
                tmp.unlink(missing_ok=True)
                raise CRBenchMissingDataError(
                    f"{name}: no answer from {url} within {timeout:g} s ({type(exc).__name__}); "
                    "check the network, or fill the cache from a local copy with "
                    "`crbench data seed DIR`") from None
            if not _is_transient(exc):
                tmp.unlink(missing_ok=True)
                break
        finally:
            tmp.unlink(missing_ok=True)
        if attempt < retries:
            time.sleep(backoff * (attempt + 1))
    if isinstance(last, CRBenchDataError):
        raise last
    raise CRBenchMissingDataError(
        f"{name}: download from {url} failed after {attempts} attempt(s): "
        f"{type(last).__name__}: {last}; fill the cache from a local copy with "
        "`crbench data seed DIR`") from None


def missing_message(names: Iterable[str], directory: Path, *, dataset: str | None = None,
                    offline: bool = True) -> str:
    names = list(names)
    target = dataset if dataset else " ".join(names)
    why = "offline mode is on, so nothing is downloaded" if offline else "they could not be fetched"
    return (
        f"{len(names)} data file(s) missing from the cache {directory} ({why}):\n"
        + "".join(f"  - {n}\n" for n in names)
        + f"Fetch them with:  crbench data fetch {target} --data-dir {directory}\n"
        + f"or, from a folder holding copies:  crbench data seed DIR --data-dir {directory}"
    )


def fetch(names: list[str], *, data_dir: Path, offline: bool, progress=True,
          registry: dict | None = None, dataset: str | None = None,
          timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
          lock_timeout: float | None = None, notify=None) -> dict[str, Path]:
    """Make sure every file of ``names`` is in the cache; return ``{name: path}``.

    Files already cached (right sha256) are used as they are.  The others are downloaded
    from their registry address (with a progress bar if ``progress``), one process at a
    time per file.  With ``offline=True`` nothing is downloaded: missing files raise
    :class:`CRBenchMissingDataError` listing them and the fetch/seed commands (``dataset``
    names the dataset in the suggested command).
    """
    from pytest_crbench.datasets.catalog import load_registry  # noqa: PLC0415

    directory = Path(data_dir)
    reg = registry if registry is not None else load_registry(directory)
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise CRBenchConfigError(
            f"not in the registry: {', '.join(unknown)} (see `crbench data list`)")
    out: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        entry = reg[name]
        if directory.is_dir() and is_cached(name, entry.sha256, directory):
            out[name] = directory / name
        else:
            missing.append(name)
    if not missing:
        return out
    if offline:
        raise CRBenchMissingDataError(missing_message(missing, directory, dataset=dataset))
    ensure_dir(directory)
    if not os.access(directory, os.W_OK):
        raise CRBenchMissingDataError(
            f"the cache {directory} is read-only for this user and lacks "
            f"{len(missing)} file(s): {', '.join(missing)}; ask its owner to run "
            f"`crbench data fetch {dataset or ' '.join(missing)} --data-dir {directory}`, "
            "or use a writable folder (--crbench-data-dir)")
    for name in missing:
        entry = reg[name]
        with file_lock(directory, name, timeout=lock_timeout, notify=notify):
            # Another worker may have fetched it while we waited for the lock.
            if not is_cached(name, entry.sha256, directory):
                download(name, entry.url, entry.sha256, directory, timeout=timeout,
                         retries=retries, progress=progress)
        out[name] = directory / name
    return out


# ------------------------------------------------------------------ seed / verify / status


@dataclass
class SeedReport:
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)     # already in the cache, verified
    bad: dict[str, str] = field(default_factory=dict)    # name -> why refused
    absent: list[str] = field(default_factory=list)      # registered, not in the source dir
    unregistered: list[str] = field(default_factory=list)  # in the source dir, not registered

    @property
    def ok(self) -> bool:
        return not self.bad


def seed(source: str | os.PathLike, *, data_dir: Path, names: Iterable[str] | None = None,
         registry: dict | None = None, lock_timeout: float | None = None) -> SeedReport:
    """Fill the cache from a local folder, verifying every file's sha256.

    Registered files found in ``source`` are hashed and copied (atomically) when they
    match; a mismatching file is refused and reported in :attr:`SeedReport.bad`.
    """
    from pytest_crbench.datasets.catalog import load_registry  # noqa: PLC0415

    src = Path(source)
    if not src.is_dir():
        raise CRBenchConfigError(f"{src}: not a folder")
    directory = ensure_dir(Path(data_dir))
    reg = registry if registry is not None else load_registry(directory)
    wanted = list(names) if names is not None else list(reg)
    report = SeedReport()
    regset = set(reg)
    report.unregistered = sorted(p.name for p in src.iterdir()
                                 if p.is_file() and p.name not in regset
                                 and not p.name.startswith("."))
    for name in wanted:
        if name not in reg:
            raise CRBenchConfigError(f"{name}: not in the registry")
        entry = reg[name]
        path = src / name
        with file_lock(directory, name, timeout=lock_timeout):
            if is_cached(name, entry.sha256, directory):
                report.present.append(name)
                continue
            if not path.is_file():
                report.absent.append(name)
                continue
            fd, tmpname = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
            os.close(fd)
            tmp = Path(tmpname)
            try:
                shutil.copyfile(path, tmp)
                _install(tmp, directory / name, entry.sha256, origin=str(path))
                report.copied.append(name)
            except CRBenchDataError as exc:
                report.bad[name] = str(exc)
            finally:
                tmp.unlink(missing_ok=True)
    return report


@dataclass
class VerifyReport:
    good: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)  # corrupted: name -> actual hash
    absent: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)         # leftover .part files removed
    kept: dict[str, str] = field(default_factory=dict)     # corrupted, read-only: not deleted

    @property
    def ok(self) -> bool:
        return not self.removed and not self.kept


def verify(*, data_dir: Path, names: Iterable[str] | None = None,
           registry: dict | None = None, lock_timeout: float | None = None) -> VerifyReport:
    """Re-hash every cached registered file; corrupted ones are deleted (and reported)."""
    from pytest_crbench.datasets.catalog import load_registry  # noqa: PLC0415

    directory = Path(data_dir)
    reg = registry if registry is not None else load_registry(directory)
    report = VerifyReport()
    for name in (list(names) if names is not None else list(reg)):
        entry = reg[name]
        path = directory / name
        if not path.is_file():
            report.absent.append(name)
            continue
        with file_lock(directory, name, timeout=lock_timeout):
            actual = sha256_file(path)
            if actual == entry.sha256:
                _update_stamp(directory, name, actual)
                report.good.append(name)
            else:
                try:
                    _remove_corrupted(path, actual, entry.sha256)
                    report.removed[name] = actual
                except CRBenchDataError:
                    report.kept[name] = actual
    if directory.is_dir() and os.access(directory, os.W_OK):
        for part in directory.glob(".*.part"):
            # Leftovers of a killed process (the live ones are younger than an hour).
            if time.time() - part.stat().st_mtime > 3600:
                part.unlink(missing_ok=True)
                report.stray.append(part.name)
    return report


def status(names: Iterable[str], *, data_dir: Path, registry: dict | None = None
           ) -> dict[str, dict]:
    """``{name: {"cached": bool, "size": bytes or None, "path": Path}}`` (no hashing: a
    file counts as cached when present; ``verify`` checks the hashes)."""
    directory = Path(data_dir)
    out = {}
    for name in names:
        path = directory / name
        size = path.stat().st_size if path.is_file() else None
        out[name] = {"cached": size is not None, "size": size, "path": path}
    return out
