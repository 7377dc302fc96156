"""Waiting for the answers of an operator's tasks (workflow/answers.py) reads each stored result
and does not depend on Celery's pub/sub notice. Real redis-server and Celery's own Redis
backend; the results are written as a worker writes them, or (a lost notice) with the notice
left out."""

from __future__ import annotations

import json
import threading
import time

import redis
from celery import Celery

from kubeupgrade.errors import PermanentError
from kubeupgrade.workflow.answers import unanswered
from kubeupgrade.workflow.app import configure

SILENT = "no answer"


def _sent(app: Celery, *names: str) -> dict:
    # As apply_async leaves them: the client subscribed to each result's channel.
    results = {}
    for name in names:
        result = app.AsyncResult(f"task-{name}")
        app.backend.on_task_call(None, result.id)
        results[name] = result
    return results


def _later(seconds: float, act) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), act()), daemon=True)
    thread.start()
    return thread


def test_an_answer_stored_without_its_notice_is_seen(redis_url):
    """The result key is written but no notice is published (what a lost pub/sub message
    looks like to the client): the wait ends when the key appears, not at its timeout."""
    app = configure(Celery("answers"), redis_url)
    client = redis.Redis.from_url(redis_url)
    sent = _sent(app, "worker-1")
    meta = {"status": "SUCCESS", "result": {"node": "worker-1", "status": "uncordoned"}, "traceback": None,
            "children": [], "date_done": None, "task_id": "task-worker-1"}
    writer = _later(0.3, lambda: client.set("celery-task-meta-task-worker-1", json.dumps(meta)))
    started = time.monotonic()
    assert unanswered(sent, 20.0, silent=SILENT) == {}
    assert time.monotonic() - started < 5.0
    writer.join()


def test_failures_are_named_and_silence_costs_one_timeout_in_all(redis_url):
    """A task that raised is named with its message; tasks that never answer are named with
    `silent`, and three of them cost the timeout once, not three times."""
    app = configure(Celery("answers"), redis_url)
    sent = _sent(app, "good", "refused", "quiet-1", "quiet-2", "quiet-3")
    _later(0.2, lambda: app.backend.mark_as_done("task-good", {"status": "uncordoned"}))
    _later(0.2, lambda: app.backend.mark_as_failure(
        "task-refused", PermanentError("release of refused refused: campaign c is running"), "Traceback"))
    started = time.monotonic()
    why = unanswered(sent, 1.0, silent=SILENT)
    waited = time.monotonic() - started
    assert why == {"quiet-1": SILENT, "quiet-2": SILENT, "quiet-3": SILENT,
                   "refused": "failed: release of refused refused: campaign c is running"}
    assert 1.0 <= waited < 2.5


def test_answers_already_stored_return_at_once(redis_url):
    app = configure(Celery("answers"), redis_url)
    app.backend.mark_as_done("task-a", 1)
    app.backend.mark_as_revoked("task-b", "campaign aborted")
    started = time.monotonic()
    assert unanswered(_sent(app, "a", "b"), 30.0, silent=SILENT) == {"b": "failed: campaign aborted"}
    assert time.monotonic() - started < 5.0


def test_a_whole_hop_of_answers_is_polled_with_one_command_per_round(redis_url):
    """An abort that restores every node's repository waits for thousands of answers: each
    round reads them all with one MGET, not one GET per node."""
    app = configure(Celery("answers"), redis_url)
    client = redis.Redis.from_url(redis_url)
    sent = _sent(app, *(f"worker-{n}" for n in range(2000)))
    client.config_resetstat()
    assert set(unanswered(sent, 0.35, silent=SILENT)) == set(sent)
    stats = client.info("commandstats")
    rounds = stats.get("cmdstat_mget", {}).get("calls", 0)
    assert 1 <= rounds <= 5 and "cmdstat_get" not in stats
