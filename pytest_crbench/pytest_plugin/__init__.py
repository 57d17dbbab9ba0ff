"""The pytest side of pytest-crbench: hooks and options, generated items, fixtures.
The only code in the package that imports pytest."""

__all__ = []
