"""Number formatting shared by the terminal summary and the report."""

from __future__ import annotations

import math

__all__ = ["pct", "num"]


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def pct(v, digits: int = 1, missing: str = "—") -> str:
    """A fraction as a percentage with ``digits`` decimals; ``missing`` for None/NaN."""
    return missing if _missing(v) else f"{100 * v:.{digits}f}"


def num(v, fmt: str = "{:.3g}", missing: str = "—") -> str:
    """A number through ``fmt``; ``missing`` for None/NaN."""
    return missing if _missing(v) else fmt.format(v)
