"""The record's own proof of the worker window, checked before a campaign may succeed."""

from hypothesis import given
from hypothesis import strategies as st

from kubeupgrade.workflow.audit import (
    outage_begun,
    outage_interval,
    peak_overlap,
    window_violations,
)
from kubeupgrade.workflow.record import new_phase

NAMES = ["prepare-host", "set-repository", "install-kubeadm", "kubeadm-upgrade-node",
         "download-packages", "drain", "install-kubelet", "restart-kubelet", "wait-ready", "uncordon",
         "hooks-after-node"]


def worker(name, start=None, end=None, dispatched=None):
    phases = [new_phase(n) for n in NAMES]
    for phase in phases[:5]:
        phase.update(state="succeeded", started=1.0, ended=2.0)
    drain, uncordon = phases[5], phases[9]
    if start is not None:
        drain.update(state="succeeded", started=start, ended=start + 1, dispatched=dispatched)
    if end is not None:
        uncordon.update(state="succeeded", started=end - 0.1, ended=end)
        phases[10].update(state="succeeded", started=end, ended=end + 1000)  # agent clock, ignored
    return {"node": name, "role": "worker", "phases": phases}


def test_the_window_is_from_the_drain_to_the_uncordon():
    assert outage_interval(worker("w1"), now=50) is None
    assert outage_interval(worker("w1", start=10, end=20), now=50) == (10, 20)
    assert outage_interval(worker("w1", start=10, end=20, dispatched=9.5), now=50) == (9.5, 20)
    assert outage_interval(worker("w1", start=10), now=50) == (10, 50)  # still out


def test_back_to_back_workers_hold_one_slot():
    entries = {"w1": worker("w1", 10, 20), "w2": worker("w2", 20, 30), "w3": worker("w3", 30.5, 40)}
    assert window_violations(entries, 1, now=100) == []


def test_overlap_beyond_the_limit_names_the_workers():
    entries = {"w1": worker("w1", 10, 25), "w2": worker("w2", 20, 30), "w3": worker("w3", 40, 50),
               "@cluster": {"node": "@cluster", "role": "cluster", "phases": []}}
    [message] = window_violations(entries, 1, now=100)
    assert "2 workers out of service at once (w1, w2)" in message and "limit is 1" in message
    assert window_violations(entries, 2, now=100) == []


def test_a_worker_still_out_counts_until_now():
    entries = {"w1": worker("w1", 10), "w2": worker("w2", 60, 70)}
    assert window_violations(entries, 1, now=100)
    assert not window_violations(entries, 1, now=55)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 50)), max_size=30))
def test_peak_overlap_matches_a_brute_force_count(pairs):
    intervals = [(float(a), float(a + b)) for a, b in pairs]
    peak, _ = peak_overlap(intervals)
    brute = max((sum(1 for s, e in intervals if s <= t < e) for t in range(0, 160)), default=0)
    assert peak == brute


def test_a_worker_whose_outage_began_holds_its_slot_in_every_attempt():
    assert not outage_begun(worker("w1"))
    started = worker("w1", start=10)
    assert outage_begun(started)
    started["phases"][5].update(state="pending", task_id=None)  # re-sent as a new attempt
    assert outage_begun(started)
    running = worker("w1")
    running["phases"][5]["state"] = "running"
    assert outage_begun(running)


def test_the_window_starts_when_the_controller_sent_the_outage_not_at_a_host_clocks_start():
    # The first out-of-service phase may run on the host (hooks before the drain, or the
    # kubelet's install when the drain is skipped): its start is the host's clock. One an hour
    # behind drew w2 out of service for an hour, across w1's outage: a false violation.
    w1, w2 = worker("w1", 10, 20), worker("w2", start=30, end=40)
    w2["phases"][5].update(started=30 - 3600, dispatched=29.5, first_dispatched=29.5)
    assert outage_interval(w2, now=100) == (29.5, 40)
    assert window_violations({"w1": w1, "w2": w2}, 1, now=100) == []
    # A record written before first_dispatched was kept: the earlier of the two, as before.
    del w2["phases"][5]["first_dispatched"]
    assert outage_interval(w2, now=100) == (30 - 3600, 40)
    # A real overlap is still seen: the controller sent w2's outage while w1 was out.
    w2["phases"][5].update(first_dispatched=15.0)
    assert window_violations({"w1": w1, "w2": w2}, 1, now=100)
