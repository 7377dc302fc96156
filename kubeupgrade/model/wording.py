"""How a message names many things: the first few, then a count of the rest, so that a line
about 5,000 nodes stays one line."""

from __future__ import annotations

from collections.abc import Sequence


def some_names(names: Sequence[str], shown: int) -> str:
    """'a, b, c and 4 more' for seven names with three shown; every name when they fit."""
    listed = ", ".join(names[:shown])
    rest = len(names) - shown
    return listed + (f" and {rest} more" if rest > 0 else "")
