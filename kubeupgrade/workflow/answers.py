"""Waiting for the answers of tasks an operator's command sent (abort's restores and releases).

Each answer is read from its stored result, a plain GET, a few times a second. Celery's own
`AsyncResult.get` waits for a pub/sub notice as well, and one lost notice (a reconnect, a
subscription that raced an unsubscribe) makes it wait out its whole timeout for a task that
answered long before: `abort --uncordon` then reported nothing about a node it had released.
A few GETs per second for one command's handful of tasks cost nothing next to that.
"""

from __future__ import annotations

import time
from typing import Any

from celery import states

POLL_SECONDS = 0.1


def unanswered(sent: dict[str, Any], timeout: float, *, silent: str) -> dict[str, str]:
    """Wait up to `timeout` seconds in all for the AsyncResults in `sent` (name -> result, all
    sent by one app); name -> why there is no good answer: `silent` for a task that did not
    answer in time, "failed: ..." for one that raised. Names that answered well are left out."""
    deadline = time.monotonic() + timeout
    waiting = dict(sent)
    why: dict[str, str] = {}
    while waiting:
        for name, meta in _stored(waiting).items():
            if meta is not None and meta["status"] in states.READY_STATES:
                del waiting[name]
                if meta["status"] != states.SUCCESS:
                    why[name] = f"failed: {_reason(meta)}"
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    for name in waiting:
        why[name] = silent
    return dict(sorted(why.items()))


def _stored(waiting: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Each result's stored state, None where there is none yet: one MGET for them all, so an
    abort that restores a whole hop's repositories polls with one command, not one per node."""
    backend = next(iter(waiting.values())).backend
    raw = backend.mget([backend.get_key_for_task(result.id) for result in waiting.values()])
    return {name: backend.decode_result(value) if value else None for name, value in zip(waiting, raw)}


def _reason(meta: dict[str, Any]) -> str:
    """One line from a failed task's stored result: its exception's message (the backend has
    turned it back into the exception), or the state (REVOKED) when there is none."""
    result = meta.get("result")
    text = str(result) if result is not None else ""
    if not text and isinstance(result, BaseException):
        text = type(result).__name__
    return text.splitlines()[0] if text else meta["status"]
