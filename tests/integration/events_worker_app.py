"""A Celery app configured as kubeupgrade's (workflow.app.configure) with one quick task, for
tests that run a real worker process on it (tests/integration/test_task_events.py)."""

from __future__ import annotations

import os
import time

from celery import Celery

from kubeupgrade.workflow.app import broker_url, configure

app = configure(Celery("events-test"), broker_url())


@app.task(name="events_test.nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

# A test may hold events longer, to see what a stopping worker does with those it holds.
if "EVENTS_TEST_FLUSH_SECONDS" in os.environ:
    from kubeupgrade.workflow import task_events

    task_events.FLUSH_SECONDS = float(os.environ["EVENTS_TEST_FLUSH_SECONDS"])
