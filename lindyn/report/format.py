"""Numbers and tables as markdown text."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["fmt", "ks", "md_table"]


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: NaN as 'n/a', ±inf as '∞', tiny and huge in scientific notation."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}g}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; '|' in cells escaped, numbers through :func:`fmt`."""

    def cell(x: Any) -> str:
        text = x if isinstance(x, str) else fmt(x)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def ks(values: Sequence[int]) -> str:
    """A set of ranks, e.g. '{1, 3}', or 'none'."""
    return "{" + ", ".join(str(k) for k in values) + "}" if values else "none"
