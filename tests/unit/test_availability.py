"""Which workers a read of the Node objects finds out of service, and the poller that keeps
the latest read for the dispatcher. No I/O: nodes are built, reads are functions."""

import threading
import time

from kubeupgrade.kube.availability import (
    STALE_AFTER_SECONDS,
    AvailabilityPoller,
    OutOfService,
    Unavailable,
    out_of_service,
    pause_after,
    why_unread,
)
from kubeupgrade.kube.discovery import CONTROL_PLANE_LABEL
from kubeupgrade.kube.nodes import CORDONED_BY


def node(name, *, cordoned=False, ready=True, owner=None, control_plane=False):
    return {"metadata": {"name": name, "labels": {CONTROL_PLANE_LABEL: ""} if control_plane else {},
                         "annotations": {CORDONED_BY: owner} if owner else {}},
            "spec": {"unschedulable": True} if cordoned else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def test_a_worker_cordoned_or_not_ready_is_out_of_service_and_says_why():
    assert out_of_service(node("w1")) is None
    assert out_of_service(node("w2", cordoned=True)) == ("w2", Unavailable(True, None, True))
    assert out_of_service(node("w2", cordoned=True))[1].why == "cordoned"
    assert out_of_service(node("w3", ready=False))[1].why == "not Ready"
    both = out_of_service(node("w4", cordoned=True, ready=False, owner="prod-1"))[1]
    assert both == Unavailable(True, "prod-1", False)
    assert both.why == "cordoned by campaign prod-1 and not Ready"
    # an owner annotation left on a node no longer cordoned is not an owner
    assert out_of_service(node("w5", ready=False, owner="prod-1"))[1].owner is None


def test_control_planes_and_nameless_objects_are_not_counted():
    assert out_of_service(node("cp-1", cordoned=True, ready=False, control_plane=True)) is None
    assert out_of_service({"metadata": {}, "spec": {"unschedulable": True}}) is None
    # no status at all: not Ready, as kubectl shows it
    assert out_of_service({"metadata": {"name": "w9"}})[1].why == "not Ready"


def test_the_poller_reads_only_while_wanted_and_keeps_the_last_good_read():
    reads = []

    def read():
        reads.append(time.time())
        if len(reads) == 2:
            raise RuntimeError("connection refused")
        return OutOfService(reads[-1], {"w1": Unavailable(True, None, True)})

    poller = AvailabilityPoller(read, floor=0.05, share=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        assert reads == [] and poller.latest() is None  # nobody wants it: no read
        poller.want()
        deadline = time.time() + 5
        while len(reads) < 3 and time.time() < deadline:
            time.sleep(0.02)
        assert len(reads) >= 3
        assert poller.latest() is not None and "w1" in poller.latest().workers
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_failed_read_is_named_and_the_last_good_one_kept():
    answers = iter([OutOfService(1.0, {}), RuntimeError("API server down\nsecond line")])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    poller = AvailabilityPoller(read)
    poller.read_once()
    poller.read_once()
    assert poller.error == "RuntimeError: API server down"
    assert poller.latest() == OutOfService(1.0, {})


def test_reads_are_paced_to_a_share_of_the_time_but_never_left_to_go_stale():
    assert pause_after(0.01) == 1.0  # a small cluster: the floor
    assert pause_after(0.5) == 10.0  # 5% of the thread's time
    for took in (1.0, 3.0, 10.0, 19.0):
        # a slow read (up to a third of the staleness bound): the next one lands before the
        # one before it has aged out, as measured from when that began
        assert took + pause_after(took) + took < STALE_AFTER_SECONDS
    assert pause_after(100.0) == STALE_AFTER_SECONDS / 4


def test_why_no_outage_may_start_is_worded_the_same_until_a_new_read_lands():
    assert why_unread(None, None, 100.0) == "the cluster's nodes have not been read yet"
    assert "connection refused" in why_unread(None, "MaxRetryError: connection refused", 100.0)
    fresh = OutOfService(1_000.0, {})
    assert why_unread(fresh, None, 1_000.0 + STALE_AFTER_SECONDS) == ""
    assert why_unread(fresh, "TimeoutError: read timed out", 1_010.0) == ""  # a failed read, a fresh one kept
    stale = {why_unread(fresh, "TimeoutError: read timed out", 1_000.0 + STALE_AFTER_SECONDS + tick)
             for tick in range(1, 200)}
    # one wording for the whole time it is stale: the campaign's events get it once, not every tick
    assert len(stale) == 1
    (said,) = stale
    assert "00:16:40 UTC" in said and "read timed out" in said
