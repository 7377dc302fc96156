"""Waiting on the cluster looks again soon, then at most once a second: a wait of a pod's grace
period costs a few dozen lists, not one every 0.2 s. And a drain, look by look, evicts each pod
once, waits for the evicted ones to go, and fails at its deadline naming what stayed."""

import pytest

from kubeupgrade.errors import PermanentError
from kubeupgrade.kube import drain
from kubeupgrade.kube.client import KubeUnavailable
from kubeupgrade.kube.polling import look_delay
from kubeupgrade.model.campaign import DrainPolicy, OnPdbBlock


def test_delays_start_short_double_and_stop_at_a_second():
    delays = [look_delay(n) for n in range(10)]
    assert delays[0] == 0.05
    assert all(b == min(a * 2, 1.0) for a, b in zip(delays, delays[1:]))
    assert delays[-1] == 1.0
    assert look_delay(10**9) == 1.0 and look_delay(-3) == 0.05  # a damaged count stays in range


class _Cluster:
    """A node with one pod: an eviction is refused by its budget until `refused_until`, and
    the evicted pod takes `grace` seconds to go, on a clock the waits advance."""

    def __init__(self, grace, refused_until=0.0):
        self.now = 0.0
        self.grace = grace
        self.refused_until = refused_until
        self.evicted_at = None
        self.lists = 0
        self.evictions = 0
        self.core = self  # the API's methods are named by what they do, for call() below
        self.list_pod_for_all_namespaces = "list"
        self.create_namespaced_pod_eviction = "evict"

    def call(self, what, method, *args, **kwargs):
        if method == "evict":
            self.evictions += 1
            if self.now < self.refused_until:
                raise KubeUnavailable("429", {"details": {"causes": [{"message": "web-pdb needs 2"}]}}, 429)
            self.evicted_at = self.now
            return {}
        self.lists += 1
        gone = self.evicted_at is not None and self.now >= self.evicted_at + self.grace
        pod = {"metadata": {"namespace": "shop", "name": "web-1",
                            "ownerReferences": [{"kind": "ReplicaSet", "controller": True}]}}
        return {"items": [] if gone else [pod]}

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize("grace", [0.0, 0.03, 1.0, 30.0, 120.0])
def test_waiting_for_an_evicted_pod_lists_about_once_a_second_and_evicts_it_once(grace):
    cluster = _Cluster(grace)
    done = drain.drain_node(cluster, "worker-1", DrainPolicy(timeout_seconds=600),
                            clock=lambda: cluster.now, sleep=cluster.sleep)
    assert done.evicted == ["shop/web-1"] and cluster.evictions == 1
    assert cluster.now >= grace
    assert cluster.now < grace + 1.0 + 1e-9  # seen gone within a second of going
    assert cluster.lists <= grace + 8  # 0.05, 0.1, 0.2, 0.4, 0.8, then 1 s each


def test_a_pod_that_never_goes_fails_the_drain_a_minute_after_its_timeout_naming_it():
    cluster = _Cluster(float("inf"))
    with pytest.raises(PermanentError, match="pods still on worker-1 after eviction: shop/web-1"):
        drain.drain_node(cluster, "worker-1", DrainPolicy(timeout_seconds=0),
                         clock=lambda: cluster.now, sleep=cluster.sleep)
    assert 60.0 < cluster.now <= 61.0 and cluster.lists <= 70 and cluster.evictions == 1


@pytest.mark.parametrize("on_block", [OnPdbBlock.FAIL, OnPdbBlock.DELETE])
def test_a_budget_refusing_past_the_timeout_applies_on_pdb_block(on_block):
    cluster = _Cluster(0.0, refused_until=float("inf"))
    policy = DrainPolicy(timeout_seconds=5, on_pdb_block=on_block)
    if on_block is OnPdbBlock.FAIL:
        with pytest.raises(drain.DrainBlocked, match=r"timed out after 5s: evicting shop/web-1 .*web-pdb needs 2"):
            drain.drain_node(cluster, "worker-1", policy, clock=lambda: cluster.now, sleep=cluster.sleep)
        assert 5.0 <= cluster.now <= 6.0
        return
    cluster.core.delete_namespaced_pod = "delete"
    deleted = []
    plain_call = cluster.call
    cluster.call = lambda what, method, *a, **k: deleted.append(what) or setattr(cluster, "evicted_at", cluster.now) \
        if method == "delete" else plain_call(what, method, *a, **k)
    done = drain.drain_node(cluster, "worker-1", policy, clock=lambda: cluster.now, sleep=cluster.sleep)
    assert done.deleted == ["shop/web-1"] and deleted == ["delete shop/web-1"] and not done.evicted


def test_a_budget_that_lets_go_in_time_is_waited_for_and_what_was_done_survives_the_carry():
    cluster = _Cluster(2.0, refused_until=3.0)
    done = drain.DrainReport()
    looks = 0
    while True:  # as the phase does it: a fresh report from what the last look carried
        done = drain.DrainReport.from_carried(done.carried())
        look = drain.drain_look(cluster, "worker-1", DrainPolicy(timeout_seconds=60), done,
                                started=0.0, now=cluster.now)
        if not look.waiting_for:
            break
        assert look.why and "shop/web-1" in look.why and look.refused == (cluster.evicted_at is None)
        cluster.sleep(look.next_look(looks))
        looks += 1
    assert done.evicted == ["shop/web-1"] and done.blocked_retries >= 3
    assert 5.0 <= cluster.now <= 7.0
    assert cluster.evictions <= 5  # a refused eviction is asked again once a second, not sooner


@pytest.mark.parametrize("carried", [{}, {"evicted": "x"}, {"evicted": [1, 2]}, {"blocked_retries": True},
                                     {"deleted": None, "evicted": ["a/b"]}])
def test_whatever_was_carried_makes_a_report(carried):
    report = drain.DrainReport.from_carried(carried)
    assert all(isinstance(n, str) for n in report.evicted + report.deleted)
    assert isinstance(report.blocked_retries, int) and not isinstance(report.blocked_retries, bool)
