"""The worker's task events (what Flower shows), published together at most every
FLUSH_SECONDS instead of once per turn of the event loop.

Celery buffers a worker's task events and publishes the buffer on the loop's next turn. A busy
worker turns its loop for nearly every message, so each publish carried 1.6 events on average
(a 1,000-node `bench.scale`, 758 PUBLISH commands in 3 s, 484 of them such batches), and
publishing them was a tenth of an agent farm's CPU and 8% of the controller's main process.
Here the first event after a publish waits up to FLUSH_SECONDS for the others; Celery's own
limit (24 events) still publishes a full buffer at once. The events keep the time they were
made, so Flower and the benchmarks' event log read the same times. What is left in the buffer
when the worker stops is published on the way out (Celery drops it).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger("kubeupgrade.task_events")

FLUSH_SECONDS = 0.1


class BatchedEventsConsumer(Consumer):
    _last_flush = 0.0
    _flush_pending = False  # a flush is set on the loop's timer

    def _flush_events(self) -> None:
        # Called on the loop's turn after an event was buffered (Celery's call_soon), so the
        # timer is only ever touched from the loop's thread.
        due = self._last_flush + FLUSH_SECONDS - time.monotonic()
        if due > 0 and self.hub is not None:
            if not self._flush_pending:
                self._flush_pending = True
                self.hub.call_later(due, self._flush_now)
            return
        self._flush_now()

    def _flush_now(self) -> None:
        self._flush_pending = False
        self._last_flush = time.monotonic()
        super()._flush_events()

    def _publish_left(self) -> None:
        try:
            super()._flush_events()
        except Exception as error:  # noqa: BLE001 - the broker may be gone; events are best effort
            log.debug("task events left unpublished at stop: %s", error)

    def stop(self) -> Any:
        self._publish_left()
        return super().stop()

    def shutdown(self) -> Any:
        self._publish_left()
        return super().shutdown()
