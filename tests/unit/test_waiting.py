"""A waiting cluster phase looks again within its task only while the wait is short, carrying
what each look did; past that, the wait goes back to the wrapper to be sent through the broker."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from kubeupgrade.kube.polling import look_delay
from kubeupgrade.workflow.phase import QUICK_WAIT_SECONDS, _look_while_quick
from kubeupgrade.workflow.waiting import (
    HELD_WAIT_SECONDS,
    LOOKS_PER_SECOND_PER_PROCESS,
    MOST_PACED_SECONDS,
    PROCESSES_ENV,
    WAIT_SLOTS_ENV,
    StillWaiting,
    WaitState,
    first_look,
    held_wait_seconds,
    make_wait_slots,
    paced,
    pool_processes,
    remove_stale_wait_slots,
    wait_slot,
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


class _Clock:
    """time.monotonic and time.sleep of the phase wrapper, without waiting."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    from kubeupgrade.workflow import phase

    fake = _Clock()
    monkeypatch.setattr(phase, "time", SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep, time=fake.monotonic))
    return fake


@pytest.fixture
def slots(tmp_path, monkeypatch):
    """Two slots (a pool of four), as `kubeupgrade controller` makes them before it forks."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(WAIT_SLOTS_ENV, raising=False)
    directory = make_wait_slots(4)
    yield Path(directory)
    os.environ.pop(WAIT_SLOTS_ENV, None)


def _hold(directory, count):
    """Another process holding `count` slots, as a pool process mid-wait would."""
    code = ("import fcntl, os, sys, time\n"
            f"for name in sorted(n for n in os.listdir({str(directory)!r}) if n.startswith('slot-'))[:{count}]:\n"
            f"    fd = os.open(os.path.join({str(directory)!r}, name), os.O_RDONLY)\n"
            "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


class _Store:
    """The one question a wait asks the record past its quick budget."""

    def __init__(self, active_for_looks=10**6):
        self.asked = 0
        self.active_for_looks = active_for_looks

    def is_active(self, campaign_id):
        assert campaign_id == "c1"
        self.asked += 1
        return self.asked <= self.active_for_looks


def _job(store=None):
    job = SimpleNamespace(wait=first_look("t1", 0), campaign_id="c1", store=store or _Store(), reported=[])
    job.report = job.reported.append
    return job


def _waited(body, seen, clock, store=None):
    job = _job(store)
    started = clock.now
    with pytest.raises(StillWaiting):
        _look_while_quick(body, job)
    return clock.now - started


def test_a_process_with_a_free_slot_looks_in_its_task_for_longer_then_gives_the_slot_back(slots, clock):
    assert sorted(os.listdir(slots)) == ["owner", "slot-0", "slot-1"]
    body, seen = _body(1000)
    waited = _waited(body, seen, clock)
    assert QUICK_WAIT_SECONDS < waited <= HELD_WAIT_SECONDS
    with wait_slot() as first, wait_slot() as second, wait_slot() as third:
        assert (first, second, third) == (True, True, False)  # both free again, and only two


def test_with_every_slot_taken_a_wait_goes_to_the_broker_after_the_quick_budget(slots, clock):
    holder = _hold(slots, 2)
    try:
        body, seen = _body(1000)
        assert _waited(body, seen, clock) <= QUICK_WAIT_SECONDS
        with wait_slot() as got:
            assert got is False
    finally:
        holder.kill()
        holder.wait()


def test_the_slot_of_a_process_killed_mid_wait_is_free_again(slots, clock):
    holder = _hold(slots, 2)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    body, seen = _body(1000)
    assert _waited(body, seen, clock) > QUICK_WAIT_SECONDS


def test_without_slots_a_process_keeps_to_the_quick_budget(clock, monkeypatch, tmp_path):
    monkeypatch.delenv(WAIT_SLOTS_ENV, raising=False)
    body, seen = _body(1000)
    assert _waited(body, seen, clock) <= QUICK_WAIT_SECONDS
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        assert os.listdir(make_wait_slots(1)) == ["owner"]  # a pool of one keeps its process free
        assert _waited(body, seen, clock) <= QUICK_WAIT_SECONDS
        os.environ[WAIT_SLOTS_ENV] = "/nonexistent/kubeupgrade-waits"
        assert _waited(body, seen, clock) <= QUICK_WAIT_SECONDS
    finally:
        os.environ.pop(WAIT_SLOTS_ENV, None)


def test_a_wait_that_ends_within_the_held_time_returns_its_outcome(slots, clock):
    body, seen = _body(5)  # ready after 1.55 s of looks: past the quick budget, within the held one
    job = _job()
    assert _look_while_quick(body, job) == "done"
    assert len(seen) == 6


def test_a_campaign_aborted_while_a_slot_holder_waits_sends_the_wait_to_the_broker_at_its_next_look(slots, clock):
    body, seen = _body(1000)
    store = _Store(active_for_looks=1)
    waited = _waited(body, seen, clock, store)
    assert QUICK_WAIT_SECONDS < waited < 1.0 and store.asked == 2  # one look past the quick budget
    with wait_slot() as first, wait_slot() as second:
        assert (first, second) == (True, True)


def test_a_slot_holder_writes_what_it_waits_for_each_time_it_changes_and_only_past_the_quick_budget(slots, clock):
    details = iter(["pods", "pods", "pods", "pods", "pods", "budget", "budget"] + ["pods"] * 100)

    def body(job):
        raise StillWaiting(f"waiting for {next(details)}", 0.25)

    job = _job()
    with pytest.raises(StillWaiting):
        _look_while_quick(body, job)
    # looks at 0, .25 (quick: nothing written), then .5 .. 2.75 s with a slot: each change once
    assert job.reported == ["waiting for pods", "waiting for budget", "waiting for pods"]
    assert job.wait.detail == "waiting for pods"  # so the look sent next does not write it again


def test_the_time_held_in_a_task_stays_well_inside_the_visibility_timeout(slots, clock):
    assert held_wait_seconds(4 * 3600) == HELD_WAIT_SECONDS
    assert held_wait_seconds(2.0) == 0.5 and held_wait_seconds(0) == 0
    body, seen = _body(1000)
    job = _job()
    started = clock.now
    with pytest.raises(StillWaiting):
        _look_while_quick(body, job, held=held_wait_seconds(4.0))
    assert QUICK_WAIT_SECONDS < clock.now - started <= 1.0


def _slots_dir(parent, name, *, age, owner=True):
    path = parent / f"kubeupgrade-waits-{name}"
    path.mkdir()
    (path / "slot-0").touch()
    if owner:
        (path / "owner").touch()
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_slot_directories_of_controllers_that_are_gone_are_removed_and_live_ones_kept(tmp_path):
    dead = _slots_dir(tmp_path, "dead", age=3600)  # its controller was SIGKILLed or exec'd
    older = _slots_dir(tmp_path, "older", age=3600, owner=False)  # from before owner files
    fresh = _slots_dir(tmp_path, "fresh", age=0, owner=False)  # another controller making it now
    live = _slots_dir(tmp_path, "live", age=3600)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, time\n"
                               f"fd = os.open({str(live / 'owner')!r}, os.O_RDONLY)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                               "print('held', flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "unrelated").mkdir()
        assert sorted(remove_stale_wait_slots(str(tmp_path))) == sorted([str(dead), str(older)])
        assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, live.name, "unrelated"]
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_wait_slots(str(tmp_path)) == [str(live)]  # its holder is gone now


def test_a_controller_making_its_slots_removes_a_dead_ones_and_keeps_its_own_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(WAIT_SLOTS_ENV, raising=False)
    dead = _slots_dir(tmp_path, "dead", age=3600)
    try:
        mine = Path(make_wait_slots(4))
        os.utime(mine, (time.time() - 3600,) * 2)
        assert not dead.exists() and mine.exists()
        assert remove_stale_wait_slots(str(tmp_path)) == []  # this process holds its owner lock
    finally:
        os.environ.pop(WAIT_SLOTS_ENV, None)


def test_a_link_named_like_a_slot_directory_is_never_followed(tmp_path):
    target = _slots_dir(tmp_path, "target", age=0)
    link = tmp_path / "kubeupgrade-waits-link"
    link.symlink_to(target)
    old = time.time() - 3600
    os.utime(target, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    removed = remove_stale_wait_slots(str(tmp_path))
    assert str(link) not in removed and link.is_symlink()
