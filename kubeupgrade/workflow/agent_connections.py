"""An agent's broker connections, kept to four: thousands of agents share one redis-server, and
every connection an agent holds counts against its `maxclients` and file limit (README,
Capacity).

What an agent holds between tasks, all in its main process:
1. the queue consumer's blocking pop,
2. the consumer's acknowledgements (its channel's command connection),
3. task events for Flower (the event channel's command connection),
4. the liveness key it refreshes (kubeupgrade.workflow.liveness).

What Celery and kombu would hold on top, and why they do not:
- Every kombu Redis channel checks its connection with a PING taken from its *consuming* pool.
  The event channel never consumes, so that connection would sit idle for the agent's life:
  it is closed once the event channel is up (`CloseIdleEventsConnection`, again after each
  reconnection).
- The process that runs a task (the prefork child) opens the record, the result backend and a
  producer for the chain's next link. A node runs a task now and then, so these are released
  when each task ends (`release_task_connections`), and the producer is not pooled at all
  (`broker_pool_limit` 0: opened for the one message a task sends, then closed). The next task
  reconnects: a millisecond or two, against tasks that take seconds to minutes.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import Celery, bootsteps
from celery.signals import task_postrun

log = logging.getLogger("kubeupgrade.agent")


class CloseIdleEventsConnection(bootsteps.StartStopStep):
    """Close the event channel's consuming-side connection (used only for kombu's PING when the
    channel was made); publishing events goes on over the channel's command connection."""

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, parent: Any) -> None:
        dispatcher = getattr(parent, "event_dispatcher", None)
        connection = getattr(dispatcher, "connection", None)
        if connection is None:
            return
        try:
            idle = connection.default_channel.async_pool
        except Exception as error:  # noqa: BLE001 - a budget, not a reason to stop consuming
            log.warning("could not close the idle events connection: %s", error)
            return
        idle.disconnect()


def release_task_connections(app: Celery) -> None:
    """Close the connections the task's process opened (record, results); the next task opens
    them again."""
    from kubeupgrade.workflow.app import broker_url
    from kubeupgrade.workflow.phase import store_for

    with contextlib.suppress(Exception):  # closing must never fail a task that has ended
        store_for(broker_url()).redis.connection_pool.disconnect()
    backend = app.backend
    client = getattr(backend, "client", None)
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            pool.disconnect()


def limit_connections(app: Celery) -> None:
    """Configure `app` (before its worker starts) to hold at most four broker connections
    between tasks."""
    app.conf.broker_pool_limit = 0
    app.steps["consumer"].add(CloseIdleEventsConnection)

    @task_postrun.connect(weak=False)
    def release(**_: object) -> None:
        release_task_connections(app)
