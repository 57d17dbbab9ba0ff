"""Exceptions raised by pytest-crbench.  Every message names what is wrong and where."""

__all__ = ["CRBenchError", "CRBenchDataError", "CRBenchConfigError",
           "CRBenchDetectorError", "CRBenchMissingDataError"]


class CRBenchError(Exception):
    """Base class of every error raised by pytest-crbench."""


class CRBenchDataError(CRBenchError, ValueError):
    """Input data (a FITS file, an extension, a group) is not what was expected."""


class CRBenchConfigError(CRBenchError, ValueError):
    """An option, a ``[tool.crbench]`` key or a floors file is invalid."""


class CRBenchDetectorError(CRBenchError):
    """A detector could not be found, loaded or run."""


class CRBenchMissingDataError(CRBenchError, FileNotFoundError):
    """A dataset's files are not in the cache (and may not be fetched)."""
