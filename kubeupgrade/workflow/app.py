"""The Celery application shared by the controller, the agents and the CLI.

Safety settings from `shared/notes/celery.md`: JSON only; late acks with prefetch 1 so a killed
worker's task is redelivered; a visibility timeout longer than the longest step; task events on
for Flower; long-running tasks are not cancelled on a broker blip (the phases are idempotent,
a duplicate run is absorbed, a half-killed kubeadm is not). Tasks and control messages are
signed when the environment names a message identity (kubeupgrade.security.messages).
"""

from __future__ import annotations

import os

from celery import Celery

from kubeupgrade.security.messages import MessageIdentity, sign_messages
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
    return app


app = configure(Celery("kubeupgrade", include=["kubeupgrade.workflow.controller_tasks",
                                               "workers.node_tasks"]), broker_url())


def use_broker(url: str) -> Celery:
    """Point the shared app at `url` before a worker starts (the --broker of agent/controller)."""
    os.environ["KUBEUPGRADE_BROKER"] = url
    return configure(app, url)


_clients: dict[str, Celery] = {}


def client_app(url: str) -> Celery:
    """An app for sending tasks to workers on `url` from a client process.

    A Celery app keeps its connection pools once used, so each broker gets its own app rather
    than reconfiguring the shared one.
    """
    if url not in _clients:
        _clients[url] = configure(Celery("kubeupgrade-client"), url)
    return _clients[url]
