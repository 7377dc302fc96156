"""A waiting phase's look through the broker is a Celery retry without an exception
(workflow/phase.py, _look_again); the workers' app keeps no result for it, while a retry after an
error and a failure keep theirs (the dispatcher reads failures to re-send lost work). Real
redis-server, the real app configuration and Celery's own Redis backend."""

from __future__ import annotations

import json

import redis

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.workflow.app import WorkerCelery, configure


def _state(client: redis.Redis, task_id: str) -> str | None:
    raw = client.get(f"celery-task-meta-{task_id}")
    return json.loads(raw)["status"] if raw else None


def test_a_look_leaves_no_result_and_an_error_retry_or_a_failure_does(redis_url):
    app = configure(WorkerCelery("look-results"), redis_url)
    client = redis.Redis.from_url(redis_url)
    app.backend.mark_as_retry("look", None, "Traceback: a look")
    app.backend.mark_as_retry("error", TemporaryError("dpkg lock held"), "Traceback: an error")
    app.backend.mark_as_failure("failed", PermanentError("kubeadm exited 1"), "Traceback: a failure")
    assert _state(client, "look") is None
    assert _state(client, "error") == "RETRY"
    assert "dpkg lock held" in json.loads(client.get("celery-task-meta-error"))["result"]["exc_message"][0]
    assert _state(client, "failed") == "FAILURE"


def test_a_look_does_not_overwrite_what_an_earlier_retry_of_the_same_task_left(redis_url):
    # The same task id carries every look and every retry of a phase: an error retry's record
    # stays until the phase ends (record.done_waiting), whatever looks follow it.
    app = configure(WorkerCelery("look-results"), redis_url)
    client = redis.Redis.from_url(redis_url)
    app.backend.mark_as_retry("task", TemporaryError("API server unavailable"), "Traceback")
    app.backend.mark_as_retry("task", None, "Traceback: a look")
    kept = json.loads(client.get("celery-task-meta-task"))
    assert kept["status"] == "RETRY" and "API server unavailable" in kept["result"]["exc_message"][0]
