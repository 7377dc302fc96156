"""Text from the record, made safe to show on an operator's terminal. Pure.

What the commands print comes partly from the broker: outputs of host commands, errors, node
names, events, notices. Anything holding a broker credential (an agent's, say) can write there,
and a host command's output is whatever the host printed. Two things must not reach the
terminal as they are: control characters (an escape sequence can recolour, hide or rewrite
what the operator reads) and, for the status screen, rich's markup, where kubeadm's own
"[upgrade/apply]" prefixes vanished and a "[/etc/...]" in an error stopped `status` with a
MarkupError.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

# C0 and C1 control characters but the newline and the tab, and DEL
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """`text` with each control character shown as its escape (ESC as \\x1b)."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", str(text))


def plain_text(text: object, style: str = "") -> Text:
    """`text` for rich as it is (no markup read in it), with control characters shown."""
    from rich.text import Text

    return Text(printable(text), style=style)
