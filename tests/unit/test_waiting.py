"""A waiting cluster phase looks again within its task only while the wait is short, carrying
what each look did; past that, the wait goes back to the wrapper to be sent through the broker."""

from types import SimpleNamespace

import pytest

from kubeupgrade.kube.polling import look_delay
from kubeupgrade.workflow.phase import QUICK_WAIT_SECONDS, _look_while_quick
from kubeupgrade.workflow.waiting import (
    LOOKS_PER_SECOND_PER_PROCESS,
    MOST_PACED_SECONDS,
    PROCESSES_ENV,
    StillWaiting,
    WaitState,
    first_look,
    paced,
    pool_processes,
)


def _body(ready_after_looks):
    seen = []

    def body(job):
        seen.append((job.wait.looks, dict(job.wait.carried)))
        if job.wait.looks >= ready_after_looks:
            return "done"
        raise StillWaiting(f"look {job.wait.looks}", look_delay(job.wait.looks),
                           {"evicted": [f"shop/pod-{job.wait.looks}"]})
    return body, seen


@pytest.mark.parametrize("ready_after", [0, 1, 3])
def test_a_quick_wait_ends_within_the_task_with_each_look_carrying_the_last(ready_after):
    body, seen = _body(ready_after)
    job = SimpleNamespace(wait=first_look("t1", 0))
    assert _look_while_quick(body, job) == "done"
    assert [looks for looks, _ in seen] == list(range(ready_after + 1))
    assert all(carried == ({"evicted": [f"shop/pod-{looks - 1}"]} if looks else {}) for looks, carried in seen)
    assert job.wait.detail == ""  # nothing written by looks within the task


def test_a_longer_wait_goes_back_to_the_wrapper_before_the_quick_budget_is_spent():
    body, seen = _body(100)
    job = SimpleNamespace(wait=first_look("t1", 0))
    with pytest.raises(StillWaiting) as still:
        _look_while_quick(body, job)
    slept = sum(look_delay(n) for n in range(len(seen) - 1))
    assert slept <= QUICK_WAIT_SECONDS < slept + still.value.after
    assert len(seen) == 4 and still.value.after == look_delay(3)


def test_the_state_between_looks_round_trips_and_counts_only_looks():
    state = first_look("t1", 2).next({"a": 1}).next({"b": 2}, "waiting for x")
    assert (state.looks, state.retries, state.detail, state.carried) == (2, 2, "waiting for x", {"b": 2})
    assert WaitState.from_json(state.to_json()) == state
    assert state.continues("t1", 2) and not state.continues("t1", 3) and not state.continues("t2", 2)


@pytest.mark.parametrize("processes", [1, 3, 8, 64])
@pytest.mark.parametrize("asked", [0.05, 1.0, 2.0])
def test_the_waits_together_never_look_more_often_than_the_pool_is_paced_for(processes, asked):
    budget = LOOKS_PER_SECOND_PER_PROCESS * processes
    for waiting in [1, 2, 7, 39, 40, 41, 100, 499, 500, 5000, 50000]:
        after = paced(asked, waiting, processes)
        assert asked <= after <= max(asked, MOST_PACED_SECONDS)  # never sooner than asked, nor unwatched
        # all of them together within the budget, unless that would leave a wait unwatched longer
        assert waiting / after <= budget + 1e-9 or after == MOST_PACED_SECONDS
        if waiting / asked <= budget:
            assert after == asked  # and no later than it asked while within the budget


@pytest.mark.parametrize("raw, expected", [
    ("12", 12), ("1", 1), ("", 8), ("0", 8), ("-3", 8), ("eight", 8), ("٣", 8), (" 4", 8)])
def test_the_pool_size_is_read_from_the_controller_or_defaults(monkeypatch, raw, expected):
    monkeypatch.setenv(PROCESSES_ENV, raw)
    assert pool_processes() == expected
