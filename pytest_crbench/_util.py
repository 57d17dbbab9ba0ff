"""Small general helpers shared by every layer: atomic writes, hashing, TOML, booleans.

Nothing here knows about cosmic rays; nothing heavy is imported at module load (numpy
only inside :func:`native`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable

from pytest_crbench.errors import CRBenchConfigError

__all__ = ["atomic_write", "sha256_file", "read_toml", "parse_bool", "native", "STRIP_ROWS",
           "row_strips"]

_CHUNK = 1 << 20
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one rename.

    The temporary file lives in the destination folder, so the rename is atomic and a
    crash leaves either the old file or the new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_toml(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """Parse the TOML file ``path``; errors name ``what`` ("floors file", …) and the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise CRBenchConfigError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CRBenchConfigError(f"{what} {path}: not valid TOML ({exc})") from None


def parse_bool(value: Any) -> bool | None:
    """``value`` as a boolean: a bool, or one of 1/true/yes/on and 0/false/no/off/""
    (case-insensitive); None when it is neither (the caller raises its own error)."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


def native(array, dtype=None):
    """A C-contiguous, native-byte-order copy of a FITS array (sep refuses big-endian)."""
    import numpy as np

    array = np.asarray(array)
    return np.ascontiguousarray(array, dtype=dtype or array.dtype.newbyteorder("="))


#: Rows per strip of the loops that bound full-frame temporaries: a strip of a
#: 9232-px-wide CSST chip is 38 MB of float32 (75 MB of float64 or int64).
STRIP_ROWS = 1024


def row_strips(height: int, rows: int = STRIP_ROWS):
    """``slice(r0, r1)`` of consecutive strips of ``rows`` rows covering ``height`` rows."""
    step = max(1, int(rows))
    for r0 in range(0, int(height), step):
        yield slice(r0, min(int(height), r0 + step))
