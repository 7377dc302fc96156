"""JSON for the simulated host commands, without importing the `json` package, and the locked
read-modify-write of a JSON file that their state files and the fault file share.

Every simulated command is a new Python process that reads a few small JSON files. `import json`
imports `re`, and `re` imports `enum`: on a slow machine that was a third of such a command's
start. The parsing and the encoding are done by `_json`, the C accelerator the `json` package
itself drives; only the package's Python layer is left out. Whatever the fast path cannot
decide (malformed text, an interpreter without the accelerator) goes to the `json` package, so
errors and results are the package's own.
"""

from __future__ import annotations

import fcntl
import os

# `typing` itself is not imported at run time (see hostbin); mypy treats this name as it treats
# typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any

_SPACE = " \t\n\r"  # JSON's whitespace, no more (str.strip() alone would also take \f, \v, ...)


class _Options:
    """What `_json.make_scanner` reads off a decoder: the `json` package's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity, as json.loads reads them


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_scan: Callable[[str, int], tuple[Any, int]] | None
_encode: Callable[[Any, int], tuple[str, ...]] | None
try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner

    _scan = make_scanner(_Options())  # type: ignore[arg-type]  # it reads the attributes only
    # markers=None: no check for circular references (the callers write trees they built)
    _encode = make_encoder(None, _unserializable, encode_basestring_ascii, None, ":", ",",
                           False, False, True)
except (ImportError, TypeError):  # another interpreter, or an accelerator of another shape
    _scan = _encode = None


def loads(text: str) -> Any:
    """What `json.loads(text)` returns, or the ValueError it raises."""
    if _scan is not None:
        start = len(text) - len(text.lstrip(_SPACE))
        try:
            value, end = _scan(text, start)
        except Exception:  # noqa: BLE001, S110 - malformed: the json package below says where
            # (StopIteration at the start; past it the accelerator raises the json package's
            # own error, or, in a process that has not imported json.decoder, SystemError)
            pass
        else:
            if not text[end:].strip(_SPACE):
                return value
    import json

    return json.loads(text)


def dumps(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"))`: compact, ASCII, keys in insertion order."""
    if _encode is not None:
        return "".join(_encode(value, 0))
    import json

    return json.dumps(value, separators=(",", ":"))


class LockedJson:
    """`with LockedJson(path) as data:` reads the JSON file at `path` under an exclusive lock (a
    `.lock` file beside it, held for the block) and, when the block ends without an error and
    `data` changed, writes it back whole, by rename, so a reader never sees half a file.
    `missing`, if given, is what a file that does not exist reads as (its directory is made).
    A class, not contextlib: every simulated command uses it, and contextlib costs its start."""

    def __init__(self, path: str, missing: Any = None) -> None:
        self.path = path
        self.missing = missing
        self.lock: Any = None
        self.text = ""
        self.data: Any = None

    def __enter__(self) -> Any:
        if self.missing is not None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.lock = open(os.path.splitext(self.path)[0] + ".lock", "a")  # noqa: SIM115 - held for the block
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            try:
                with open(self.path) as file:
                    self.text = file.read()
            except FileNotFoundError:
                if self.missing is None:
                    raise
                self.text = dumps(self.missing)  # as if it were there: written only if changed
                self.data = loads(self.text)  # a copy of its own
            else:
                self.data = loads(self.text)
        except BaseException:
            self.lock.close()  # a file it cannot read leaves no lock behind
            raise
        return self.data

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            text = dumps(self.data) if kind is None else self.text
            if text != self.text:
                temporary = os.path.splitext(self.path)[0] + ".tmp"
                with open(temporary, "w") as file:
                    file.write(text)
                os.replace(temporary, self.path)
        finally:
            self.lock.close()
