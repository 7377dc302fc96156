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
  producer for the chain's next link (`broker_pool_limit` 1: one pooled producer). A node runs
  a chain now and then, so these are closed when a task ends (`release_task_connections`)
  unless its chain's next link is this agent's own: that link is already on the queue, and
  opening the three again was most of such a hand-off (12-21 ms against 6-7 ms on a quiet
  machine, README Capacity). The next chain reconnects.
- A chain that arrives from the controller (install-kubelet, after the drain) finds the producer
  closed, and sending its next link would open it and declare the queue: 5 ms on a quiet machine,
  ~45 ms on a loaded one, on the node's outage. So a task whose next link is this agent's own
  opens the producer beside its body (`warm_next_link`, once the phase is recorded begun), in a
  thread the task ends by joining.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import kombu.pools
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
    """Close the connections the task's process opened (record, results, the producer of the
    chain's next link); the next task opens them again."""
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
    with contextlib.suppress(Exception):
        # The producer's pooled connection: kombu's pools are closed and forgotten, and the app
        # drops its handles on them, as Celery's own after-fork cleanup does (app._after_fork);
        # the next send builds them again.
        kombu.pools.reset()
        app._pool = None
        app.amqp._producer_pool = None


def next_link_queue(request: Any) -> str | None:
    """The queue of the link a task's chain sends next (Celery keeps the chain's remaining
    links last-first in `request.chain`), or None: the chain ends here, or was stopped."""
    chain = getattr(request, "chain", None)
    if not chain:
        return None
    last = chain[-1]
    options = last.get("options") if isinstance(last, dict) else None
    queue = options.get("queue") if isinstance(options, dict) else None
    return queue if isinstance(queue, str) else None


def limit_connections(app: Celery, own_queue: str) -> None:
    """Configure `app` (before its worker starts) to hold at most four broker connections
    between tasks. A task whose chain goes on here (`own_queue`: the next link is this agent's)
    keeps them for that link: it is already on the queue, and opening them again cost each
    such hand-off more than the rest of it (measured in README, Capacity)."""
    app.conf.broker_pool_limit = 1  # one producer, kept while the chain stays here
    app.steps["consumer"].add(CloseIdleEventsConnection)
    warming: dict[str, threading.Thread] = {}  # task id -> its warm-up (one task at a time here)

    from kubeupgrade.workflow.phase import body_starting

    # Once the phase is recorded begun (body_starting), not at the task's start: a warm-up
    # beside the begin delayed it as much as it saved at the end (README, Capacity).
    @body_starting.connect(weak=False)
    def warm(sender: Any = None, **_: object) -> None:
        request = getattr(sender, "request", None)
        thread = warm_next_link(app, request, own_queue)
        task_id = getattr(request, "id", None)
        if thread is not None and task_id is not None:
            warming[task_id] = thread

    @task_postrun.connect(weak=False)
    def release(task_id: str | None = None, task: Any = None, state: str | None = None, **_: object) -> None:
        thread = warming.pop(task_id, None) if task_id is not None else None
        if thread is not None:  # never close the pools under a warm-up still opening them
            thread.join(WARM_JOIN_SECONDS)
        if not keeps_connections(state, getattr(task, "request", None), own_queue):
            release_task_connections(app)


# How long a task's end waits for its warm-up (the broker's connect timeout bounds the warm-up).
WARM_JOIN_SECONDS = 10.0


def warm_next_link(app: Celery, request: Any, own_queue: str) -> threading.Thread | None:
    """When the task's next link is this agent's own, open the producer that will send it and
    declare its queue, in a thread beside the task's body (which waits on host commands): the
    send at the task's end then costs what a kept producer costs. None when there is nothing to
    warm. Best effort: a failure here is the send's to meet and report."""
    if next_link_queue(request) != own_queue:
        return None
    # Made here, not in the thread: both are made on first use, and a retry sent from the body
    # (a gate's next look) would otherwise race the thread to make them. Neither connects.
    pool, queue = app.producer_pool, app.amqp.queues[own_queue]

    def open_producer() -> None:
        try:
            with pool.acquire(block=True) as producer:
                producer.maybe_declare(queue)
        except Exception as error:  # noqa: BLE001 - the send opens it again, and says why if it cannot
            log.debug("could not open the producer ahead of the next link: %s", error)

    thread = threading.Thread(target=open_producer, name="warm-next-link", daemon=True)
    thread.start()
    return thread


def keeps_connections(state: str | None, request: Any, own_queue: str) -> bool:
    """Whether a task that ended in `state` keeps its process's connections: only a success
    whose chain sends its next link to this agent. A failure, a retry or a held phase (whose
    chain is cut) ends what runs here, so everything is released."""
    return state == "SUCCESS" and next_link_queue(request) == own_queue
