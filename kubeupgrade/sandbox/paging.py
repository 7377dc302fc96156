"""Lists served in pages (`limit` and `continue`), as the real API server chunks them.

A first request with a `limit` smaller than the list answers its first page and a `continue`
token; the pages after it are cut from the list as it was at that first request (the real
server reads them from etcd at the first page's resourceVersion, so a paged list is one
consistent snapshot). A token older than the retention window is answered 410 Expired, as
after etcd's compaction (every 5 minutes by default), and a token the server never issued is a
400. The token's shape is the real one: base64 of {"v":"meta.k8s.io/v1","rv":N,"start":KEY}.
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubeupgrade.sandbox.store import ApiError

RETENTION_SECONDS = 300.0  # kube-apiserver's default --etcd-compaction-interval
MOST_SNAPSHOTS = 64  # lists half-read at once; the oldest goes first (its token then expires)


def sort_key(obj: dict[str, Any]) -> str:
    """An object's storage key below the resource's prefix: namespace/name, or name."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


@dataclass
class _Snapshot:
    taken: float
    keys: list[str]
    items: list[dict[str, Any]]
    counted: bool  # remainingItemCount is told only for a list without selectors


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None
    remaining: int | None

    def list_metadata(self) -> dict[str, Any]:
        """What a list's metadata adds for paging: nothing on its last (or only) page."""
        if self.continue_token is None:
            return {}
        told: dict[str, Any] = {"continue": self.continue_token}
        if self.remaining is not None:
            told["remainingItemCount"] = self.remaining
        return told


def _token(rv: str, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_token(token: str) -> tuple[str, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        if raw.get("v") != "meta.k8s.io/v1" or not isinstance(raw.get("start"), str):
            raise ValueError("unknown version")
        return str(int(raw["rv"])), raw["start"]
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise ApiError(400, "BadRequest", f"continue key is not valid: {error}") from None


def _copied(value: Any) -> Any:
    """A copy of a JSON value (dicts, lists and scalars only): copy.deepcopy's memo and dispatch
    made a 15,000-pod list's first page take twice as long as the whole list unpaged."""
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) is list:
        return [_copied(item) for item in value]
    return value


def parse_limit(value: str | None) -> int:
    """0 (no limit) when absent or not positive, as the real server treats `limit`."""
    if value is None or value == "":
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        raise ApiError(400, "BadRequest", f"limit: invalid value {value!r}: must be an integer") from None


class Pager:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        # (what was listed, resourceVersion) -> the list as it was then
        self.snapshots: dict[tuple[str, str], _Snapshot] = {}

    def first(self, what: str, items: list[dict[str, Any]], rv: str, limit: int,
              counted: bool = True) -> Page:
        """The first page of `items` (sorted by storage key); the rest kept for its token."""
        if not limit or len(items) <= limit:
            return Page(items, rv, None, None)
        rest = [_copied(o) for o in items[limit:]]  # the sandbox's controllers change objects in place
        with self.lock:
            self._forget_old()
            self.snapshots[(what, rv)] = _Snapshot(self.clock(), [sort_key(o) for o in rest], rest, counted)
        return Page(items[:limit], rv, _token(rv, sort_key(items[limit - 1]) + "\x00"),
                    len(rest) if counted else None)

    def next(self, what: str, token: str, limit: int) -> Page:
        rv, start = _parse_token(token)
        with self.lock:
            self._forget_old()
            snapshot = self.snapshots.get((what, rv))
        if snapshot is None:
            raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                           "consistent list result. You can start a new list without the continue "
                           "parameter.")
        begin = bisect.bisect_left(snapshot.keys, start)
        end = len(snapshot.items) if not limit else min(begin + limit, len(snapshot.items))
        page = snapshot.items[begin:end]
        if end >= len(snapshot.items):
            return Page(page, rv, None, None)
        left = len(snapshot.items) - end
        return Page(page, rv, _token(rv, snapshot.keys[end - 1] + "\x00"), left if snapshot.counted else None)

    def _forget_old(self) -> None:
        now = self.clock()
        for key in [k for k, s in self.snapshots.items() if now - s.taken > RETENTION_SECONDS]:
            del self.snapshots[key]
        while len(self.snapshots) >= MOST_SNAPSHOTS:
            del self.snapshots[min(self.snapshots, key=lambda k: self.snapshots[k].taken)]
