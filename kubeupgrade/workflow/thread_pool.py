"""The thread pool a Windows agent runs its task in (Windows has no fork), with every end of a
task reported to the worker.

Celery's own thread pool drops the worker's error callback: when tracing a task itself fails
(its failure cannot be stored: the broker is out of memory, say), the exception ends in the
thread's future and nothing is told. The request then stays active and its message
unacknowledged for the agent's life, and with one task at a time the agent never takes
another: it kept beating while its queue filled (bench.soak, broker-full). Here such a failure
goes to the error callback, as the prefork pool reports a child's, so the request ends, its
message is acknowledged or given back, and the agent goes on (or, if even that is refused,
restarts: runners._RestartOnUnrecoverable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo
from celery.concurrency import thread
from celery.concurrency.base import apply_target

log = logging.getLogger("kubeupgrade.agent")

# For the `worker_pool` setting, which takes a pool by its import path (Celery's `-P` takes
# only the names of its own pools).
POOL_NAME = "kubeupgrade.workflow.thread_pool:TaskPool"


def apply_reporting_failure(target: Callable[..., Any], args: tuple[Any, ...] | None,
                            kwargs: dict[str, Any] | None, callback: Callable[..., Any] | None,
                            accept_callback: Callable[..., Any] | None,
                            error_callback: Callable[[ExceptionInfo], Any] | None) -> None:
    """Run `target` as Celery's pools do (celery.concurrency.base.apply_target); what `target`
    raises goes to `error_callback` instead of a future nobody reads. What the callbacks raise
    is theirs, and is not reported a second time."""
    raised: list[ExceptionInfo] = []

    def traced(*positional: Any, **named: Any) -> Any:
        try:
            return target(*positional, **named)
        except Exception:
            raised.append(ExceptionInfo())
            raise

    try:
        apply_target(traced, args, kwargs, callback, accept_callback)
    except Exception as error:
        if not raised or error_callback is None:
            raise
        log.error("a task ended in an error outside its body: %s: %s", type(error).__name__,
                  str(error).splitlines()[0] if str(error) else "")
        error_callback(raised[0])


class TaskPool(thread.TaskPool):
    """Celery's thread pool, whose tasks always end in one of the worker's callbacks."""

    def on_apply(self, target: Callable[..., Any], args: tuple[Any, ...] | None = None,
                 kwargs: dict[str, Any] | None = None, callback: Callable[..., Any] | None = None,
                 accept_callback: Callable[..., Any] | None = None,
                 error_callback: Callable[[ExceptionInfo], Any] | None = None, **_: Any) -> Any:
        future = self.executor.submit(apply_reporting_failure, target, args, kwargs, callback,
                                      accept_callback, error_callback)
        return thread.ApplyResult(future)
