"""The Celery application shared by the controller, the agents and the CLI.

Safety settings from `shared/notes/celery.md`: JSON only; late acks with prefetch 1 so a killed
worker's task is redelivered; a visibility timeout longer than the longest step; task events on
for Flower; long-running tasks are not cancelled on a broker blip (the phases are idempotent,
a duplicate run is absorbed, a half-killed kubeadm is not). Tasks and control messages are
signed when the environment names a message identity (kubeupgrade.security.messages).
"""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from typing import Any

from celery import Celery

from kubeupgrade.security.messages import (
    CERT_ENV,
    KEY_ENV,
    TRUST_ENV,
    MessageIdentity,
    sign_messages,
)
from kubeupgrade.workflow import broker_transport
from kubeupgrade.workflow.names import CONTROLLER_QUEUE

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def broker_url() -> str:
    return os.environ.get("KUBEUPGRADE_BROKER", DEFAULT_BROKER)


def configure(app: Celery, url: str) -> Celery:
    broker_transport.install()  # a failed ack must not stop a worker consuming (see there)
    visibility = float(os.environ.get("KUBEUPGRADE_VISIBILITY_TIMEOUT", 4 * 3600))
    # One priority step: nothing sends with a priority, so every message is on its queue's plain
    # list. kombu's default four steps make each blocking pop, sent again after every message,
    # name four lists per queue: an agent's four, the agent farm's 4,000 (a third of its CPU
    # before the farm kept one; tests/e2e/test_agent_budget.py checks an agent's pop).
    transport = {"visibility_timeout": visibility, "socket_keepalive": True,
                 "health_check_interval": 25, "priority_steps": [0]}
    app.conf.update(
        broker_url=url,
        result_backend=url,
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": visibility},
        visibility_timeout=visibility,
        result_expires=14 * 24 * 3600,
        result_extended=True,
        task_track_started=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # Named, not imported: only a worker loads it (task_events.py: events published together)
        worker_consumer="kubeupgrade.workflow.task_events:BatchedEventsConsumer",
        task_default_queue=CONTROLLER_QUEUE,
        task_create_missing_queues=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        result_backend_always_retry=True,
        result_backend_max_retries=10,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    identity = MessageIdentity.from_env()
    if identity is not None:
        sign_messages(app, identity)
        _signing[:] = [_signing_env()]
    return app


# The signing identity's environment whose envelope this process's serializer holds (the
# serializer is the process's, not an app's: sign_messages).
_signing: list[tuple[str, ...]] = []


def _signing_env() -> tuple[str, ...]:
    return tuple(os.environ.get(name, "") for name in (KEY_ENV, CERT_ENV, TRUST_ENV))


def _cached(apps: dict[tuple[str, tuple[str, ...]], Celery], url: str, make: Any) -> Celery:
    """The app for `url` and the signing identity the environment names now, made once. A
    process whose environment names another identity than the one its serializer was last
    given (a library caller switching operators, or a test process running one sandbox after
    another on a broker port used before) has it given again: a cached app would otherwise
    sign with the identity of whichever app was configured last."""
    key = (url, _signing_env())
    app = apps.get(key)
    if app is None:
        app = apps[key] = configure(make(), url)
    elif any(key[1]) and _signing[:1] != [key[1]]:
        identity = MessageIdentity.from_env()
        if identity is not None:
            sign_messages(app, identity)
            _signing[:] = [key[1]]
    return app


def _backend_with(app: Celery, overrides: type, only: type = object) -> Any:
    """The result backend `app`'s configuration names, with the methods of `overrides` over its
    own where it is an `only` (any by default); any other as it is."""
    from celery.app import backends

    backend_cls, url = backends.by_url(app.conf.result_backend, app.loader)
    if issubclass(backend_cls, only):
        backend_cls = type(f"{overrides.__name__}{backend_cls.__name__}", (overrides, backend_cls), {})
    return backend_cls(app=app, url=url)


class _LooksUnkept:
    """No RETRY state for a waiting phase's next look (phase._look_again: a Retry without an
    exception); a retry after an error, with its exception, is kept as before."""

    def mark_as_retry(self, task_id: str, exc: Any, traceback: Any = None, request: Any = None,
                      **kwargs: Any) -> Any:
        if exc is None:
            return None
        return super().mark_as_retry(task_id, exc, traceback, request=request, **kwargs)  # type: ignore[misc]


class WorkerCelery(Celery):
    """The app the workers run phase tasks in. Its result backend keeps no RETRY state for a
    waiting phase's next look (_LooksUnkept). Nothing reads those (the dispatcher reads FAILURE
    and REVOKED only), and each was a SETEX and a PUBLISH at every look of every waiting phase,
    a fifth of a look's Redis commands."""

    def _get_backend(self) -> Any:
        return _backend_with(self, _LooksUnkept)


app = configure(WorkerCelery("kubeupgrade", include=["kubeupgrade.workflow.controller_tasks",
                                                     "workers.node_tasks"]), broker_url())


def use_broker(url: str) -> Celery:
    """Point the shared app at `url` before a worker starts (the --broker of agent/controller)."""
    os.environ["KUBEUPGRADE_BROKER"] = url
    return configure(app, url)


class ClientCelery(Celery):
    """A client app whose sends from one thread can go out together (Outbox)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = threading.local()  # .producer: the producer this thread's sends use

    def producer_or_acquire(self, producer: Any = None) -> Any:
        # Every send (a task, a group's tasks, a chain's first link) asks for its producer here.
        return super().producer_or_acquire(producer or getattr(self.outbox, "producer", None))


class Outbox:
    """This thread's sends through `app`, from now until flush(), are held in kombu's publish
    batch and sent by flush() in one pipelined round trip per `max_size` Redis commands (a
    message and its task-sent event are two). The producer is offered through the app because
    Celery's chain does not pass on a producer it is given. Any other app sends at once."""

    def __init__(self, app: Celery, max_size: int) -> None:
        self._app = app if isinstance(app, ClientCelery) else None
        self._stack = ExitStack()
        if self._app is None:
            return
        try:
            producer = self._stack.enter_context(self._app.producer_or_acquire())
            self._stack.enter_context(producer.batch(max_size=max_size))
        except BaseException:
            self._stack.close()
            raise
        self._app.outbox.producer = producer

    def flush(self) -> None:
        """Send what is held (an error says it was not all sent), and give the producer back."""
        if self._app is not None:
            self._app.outbox.producer = None
        self._stack.close()  # the batch sends as it is left, then the producer returns to its pool


class SenderCelery(ClientCelery):
    """A client app that sends and never waits for a result: the dispatcher's. Its result
    backend watches none of what it sends (it reads the results it needs by key:
    Dispatcher._ended_badly). Celery's group watches every task it sends, for the group's
    result (a SUBSCRIBE on the result backend's pub/sub connection, and an UNSUBSCRIBE once the
    handle is dropped): 2,000 commands for a 1,000-node hop's prepare-host group."""

    def _get_backend(self) -> Any:
        from celery.backends.redis import RedisBackend

        return _backend_with(self, _Unwatched, only=RedisBackend)


class _Unwatched:
    """Watches none of the tasks sent (SenderCelery)."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        return result

    def on_task_call(self, producer: Any, task_id: str) -> None:
        pass


_clients: dict[tuple[str, tuple[str, ...]], Celery] = {}
_senders: dict[tuple[str, tuple[str, ...]], Celery] = {}


def client_app(url: str) -> Celery:
    """An app for sending tasks to workers on `url` from a client process.

    A Celery app keeps its connection pools once used, so each broker gets its own app rather
    than reconfiguring the shared one.
    """
    return _cached(_clients, url, lambda: ClientCelery("kubeupgrade-client"))


def sender_app(url: str) -> Celery:
    """client_app for a sender that never waits for a result (SenderCelery): the dispatcher."""
    return _cached(_senders, url, lambda: SenderCelery("kubeupgrade-sender"))
