"""bench.event_log against a real redis-server: the task events a sender publishes are kept, the
first of each kind, and leaving the block stops the listening thread."""

from __future__ import annotations

import time

from bench.event_log import TaskEventLog
from kubeupgrade.workflow.app import client_app
from tests.helpers import wait_for


def test_the_events_of_tasks_sent_are_kept_once_and_the_thread_stops(redis_url):
    app = client_app(redis_url)  # sends task-sent events, as every kubeupgrade sender does
    with TaskEventLog(redis_url) as log:
        before = time.time()
        first = app.send_task("kubeupgrade.nobody", queue="bench.nobody", ignore_result=True)
        second = app.send_task("kubeupgrade.nobody", queue="bench.nobody", ignore_result=True)
        wait_for(lambda: {first.id, second.id} <= set(log.events), timeout=15)
        kept = log.events[first.id]["task-sent"]
        with app.events.default_dispatcher() as events:
            events.send("task-sent", uuid=first.id)  # a second one of its kind, later
        time.sleep(1.0)
    assert before <= kept <= time.time()
    assert log.events[first.id]["task-sent"] == kept  # the first of its kind stays
    assert not log._thread.is_alive()
