"""A worker configured as kubeupgrade's publishes its task events together (task_events.py),
against a real redis-server and a real worker process: every task's events reach a listener,
several per message under load, the last ones without a later event to push them out, and
those still held when the worker stops."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import wait_for

QUEUE = "events-test"
ROOT = Path(__file__).resolve().parents[2]


class EventWire:
    """Every task-event message on the broker's event channel as it was published (a batch is
    one message), from a listening thread."""

    def __init__(self, url: str) -> None:
        self.messages: list[list[dict]] = []
        self._pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(**{"/0.celeryev/task.*": self._keep})
        self._thread = self._pubsub.run_in_thread(sleep_time=0.01, daemon=True)

    def _keep(self, message: dict) -> None:
        body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
        self.messages.append(body if isinstance(body, list) else [body])

    def events(self, kind: str) -> dict[str, dict]:
        return {e["uuid"]: e for batch in list(self.messages) for e in batch if e.get("type") == kind}

    def worker_messages(self) -> list[list[dict]]:
        """The messages the worker published (task-sent events are the sender's)."""
        return [batch for batch in list(self.messages) if batch[0].get("type") != "task-sent"]

    def stop(self) -> None:
        self._thread.stop()
        self._thread.join(5)
        self._pubsub.close()


@pytest.fixture
def wire(redis_url: str) -> Iterator[EventWire]:
    listening = EventWire(redis_url)
    yield listening
    listening.stop()


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def start(flush_seconds: float | None = None) -> subprocess.Popen:
        env = {**os.environ, "KUBEUPGRADE_BROKER": redis_url}  # run from ROOT: its modules import
        env.pop("KUBEUPGRADE_MESSAGE_KEY", None)
        if flush_seconds is not None:
            env["EVENTS_TEST_FLUSH_SECONDS"] = str(flush_seconds)
        with (tmp_path / f"worker-{len(started)}.log").open("w") as log:  # the child keeps its own
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tests.integration.events_worker_app", "worker",
                 "-Q", QUEUE, "-n", f"events{len(started)}@%h", "-P", "threads", "-c", "4", "-E",
                 "--without-mingle", "--without-gossip", "-l", "WARNING"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _app(redis_url: str):
    from kubeupgrade.workflow.app import client_app

    return client_app(redis_url)


def _ready(app, wire: EventWire) -> None:
    """The worker consumes: one task's success seen."""
    probe = app.send_task("events_test.nap", args=[0.0], queue=QUEUE, ignore_result=True)
    wait_for(lambda: probe.id in wire.events("task-succeeded"), timeout=60)


def test_a_busy_workers_events_go_out_together_and_none_is_lost(redis_url, wire, start_worker):
    start_worker()
    app = _app(redis_url)
    _ready(app, wire)
    before = len(wire.worker_messages())
    sent = [app.send_task("events_test.nap", args=[0.01], queue=QUEUE, ignore_result=True).id
            for _ in range(60)]
    wait_for(lambda: set(sent) <= set(wire.events("task-succeeded")), timeout=60)
    for kind in ("task-received", "task-started"):
        assert set(sent) <= set(wire.events(kind)), kind
    batches = wire.worker_messages()[before:]
    events = sum(len(batch) for batch in batches)
    # One message per turn of the worker's loop carried 1.6 events in bench.scale; these 180
    # events came in a few dozen turns at most.
    assert events >= 180 and events / len(batches) >= 4, (events, len(batches))


def test_the_last_events_go_out_without_a_later_one(redis_url, wire, start_worker):
    start_worker()
    app = _app(redis_url)
    _ready(app, wire)
    alone = app.send_task("events_test.nap", args=[0.0], queue=QUEUE, ignore_result=True)
    wait_for(lambda: alone.id in wire.events("task-succeeded"), timeout=10)


def test_events_held_when_the_worker_stops_are_published(redis_url, wire, start_worker):
    worker = start_worker(flush_seconds=60.0)  # what follows a first event is held for a minute
    app = _app(redis_url)
    last = app.send_task("events_test.nap", args=[1.0], queue=QUEUE, ignore_result=True)
    wait_for(lambda: last.id in wire.events("task-received"), timeout=60)
    worker.send_signal(signal.SIGTERM)  # warm shutdown: the task ends, then the worker stops
    assert worker.wait(30) == 0
    # Its start and its success were held; the stopping worker published them.
    wait_for(lambda: last.id in wire.events("task-started") and last.id in wire.events("task-succeeded"),
             timeout=5)
