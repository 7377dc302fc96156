"""The task events of a run (what Flower reads), kept by a thread of the benchmark: per task id,
the time of its first event of each kind and the worker that received it (bench/links.py).

    with TaskEventLog(broker_url) as log:
        ...  # the campaign
    log.events  # {task id: {"task-sent": t, "task-received": t, "task-started": t, "hostname": ...,
                #            "name": ..., "deliveries": times received}}
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from celery import Celery

log = logging.getLogger("bench.event_log")


class TaskEventLog:
    def __init__(self, broker_url: str) -> None:
        self.app = Celery("bench-events", broker=broker_url)
        self.app.conf.update(event_serializer="json", accept_content=["json"])
        self.events: dict[str, dict[str, Any]] = {}
        self._receiver: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="task-events")

    def _keep(self, event: dict[str, Any]) -> None:
        task_id, kind = event.get("uuid"), event.get("type")
        if not task_id or not kind:
            return
        seen = self.events.setdefault(task_id, {})
        seen.setdefault(kind, event.get("timestamp"))
        if kind == "task-received":
            seen.setdefault("hostname", event.get("hostname"))
            seen.setdefault("name", event.get("name"))
            # a retry is the same id received again (a look paced through the broker, say)
            seen["deliveries"] = seen.get("deliveries", 0) + 1

    def _run(self) -> None:
        try:
            with self.app.connection() as connection:
                receiver = self.app.events.Receiver(connection, handlers={"*": self._keep})
                consuming = receiver.on_consume_ready

                def ready(*args: Any, **kwargs: Any) -> None:
                    consuming(*args, **kwargs)
                    self._ready.set()  # the campaign may start: its events have a listener

                receiver.on_consume_ready = ready
                self._receiver = receiver
                receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception:  # noqa: BLE001 - the broker went first: what was kept stays
            log.debug("task events stopped", exc_info=True)
        finally:
            self._ready.set()

    def __enter__(self) -> TaskEventLog:
        self._thread.start()
        self._ready.wait(30)
        self._until_heard(30.0)
        return self

    def _until_heard(self, timeout: float) -> None:
        """Send a probe event until the thread hears one. Redis hands events out by pub/sub, to
        subscribers only, and the receiver says it is ready before its loop has subscribed: an
        event sent in between is lost to it (seen once in CI as two task-sent events missing)."""
        probe = f"bench-probe-{uuid.uuid4().hex}"
        deadline = time.monotonic() + timeout
        with self.app.events.default_dispatcher() as dispatcher:
            while probe not in self.events and time.monotonic() < deadline and self._thread.is_alive():
                dispatcher.send("bench-probe", uuid=probe)
                pause = time.monotonic() + 0.5
                while probe not in self.events and time.monotonic() < pause:
                    time.sleep(0.01)
        self.events.pop(probe, None)

    def __exit__(self, *_: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(5)


def tasks_by_name(events: dict[str, dict[str, Any]], hostname_prefix: str) -> dict[str, dict[str, int]]:
    """Per task name, of the tasks received by workers whose name starts with `hostname_prefix`:
    how many tasks and how many deliveries (a retry delivers the same task again)."""
    counts: dict[str, dict[str, int]] = {}
    for seen in events.values():
        if str(seen.get("hostname") or "").startswith(hostname_prefix) and seen.get("name"):
            row = counts.setdefault(str(seen["name"]), {"tasks": 0, "deliveries": 0})
            row["tasks"] += 1
            row["deliveries"] += int(seen.get("deliveries", 1))
    return dict(sorted(counts.items(), key=lambda item: -item[1]["deliveries"]))
