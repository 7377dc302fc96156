"""How a message names many things: the first few, then a count of the rest, so that a line
about 5,000 nodes stays one line."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def some_names(names: Sequence[str], shown: int, describe: Callable[[str], str] = str) -> str:
    """'a, b, c and 4 more' for seven names with three shown; every name when they fit. Only
    the names shown go through `describe` (a hold of 5,000 workers formats ten)."""
    listed = ", ".join(describe(name) for name in names[:shown])
    rest = len(names) - shown
    return listed + (f" and {rest} more" if rest > 0 else "")
