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
    pace = drain.BUDGET_RETRY_SECONDS
    assert done.evicted == ["shop/web-1"] and done.blocked_retries >= 3.0 / pace - 1
    assert 3.0 <= cluster.evicted_at < 3.0 + pace + 1e-9  # the freed budget is used within one pace
    assert cluster.evictions <= 3.0 / pace + 2  # and asked no more often than the pace
    assert cluster.now <= cluster.evicted_at + 2.0 + 1.0 + 1e-9  # the pod seen gone within a second


class _SharedBudget:
    """Nodes with one pod each, all under one budget that lets one eviction through at a time and
    frees `recovery` seconds after it (the replacement Ready); evicted pods go at once."""

    def __init__(self, recovery):
        self.now = 0.0
        self.recovery = recovery
        self.free_at = 0.0
        self.evictions = []  # (when, pod)
        self.core = self
        self.list_pod_for_all_namespaces = "list"
        self.create_namespaced_pod_eviction = "evict"

    def call(self, what, method, *args, **kwargs):
        if method == "evict":
            if self.now < self.free_at:
                raise KubeUnavailable("429", {"details": {"causes": [{"message": "web-pdb"}]}}, 429)
            self.free_at = self.now + self.recovery
            self.evictions.append((self.now, args[0]))
            return {}
        node = kwargs["field_selector"].split("=", 1)[1]
        name = f"web-{node}"
        pod = {"metadata": {"namespace": "shop", "name": name,
                            "ownerReferences": [{"kind": "ReplicaSet", "controller": True}]}}
        return {"items": [] if any(name == pod for _, pod in self.evictions) else [pod]}


def _drain_all(cluster, arrivals):
    """Drains of the nodes in `arrivals` (node -> when it begins), each looking again when its
    look says, on one clock, until all are drained."""
    due = {node: (at, 0) for node, at in arrivals.items()}  # node -> (next look, looks so far)
    reports = {node: drain.DrainReport() for node in arrivals}
    while due:
        node, (at, looks) = min(due.items(), key=lambda item: item[1][0])
        cluster.now = at
        look = drain.drain_look(cluster, node, DrainPolicy(timeout_seconds=3600), reports[node],
                                started=arrivals[node], now=at)
        if look.waiting_for:
            due[node] = (at + look.next_look(looks), looks + 1)
        else:
            del due[node]


@pytest.mark.parametrize("drains, apart, recovery", [(20, 0.1, 0.2), (20, 0.1, 0.1), (40, 0.05, 0.2),
                                                     (20, 0.2, 0.3), (10, 0.0, 0.05), (10, 1.5, 0.2)])
def test_a_budget_that_frees_while_drains_wait_for_it_is_used_again_within_a_quarter_second(
        drains, apart, recovery):
    # Drains that begin `apart` seconds from each other (a window refilling) queue on one budget
    # that frees `recovery` after each eviction. Whatever a drain's age, once the budget frees
    # one of the waiting drains takes it within 0.25 s: a backoff per drain (old drains asking
    # seldom) or a flat second leaves it unused for up to a second while every drain waits.
    arrivals = {f"w{i:02}": apart * i for i in range(drains)}
    cluster = _SharedBudget(recovery)
    _drain_all(cluster, arrivals)
    assert len(cluster.evictions) == drains
    evicted_at = {pod: when for when, pod in cluster.evictions}
    for (when, _), (after, _) in zip(cluster.evictions, cluster.evictions[1:]):
        freed = when + recovery
        waiting = [n for n, at in arrivals.items() if at <= freed and evicted_at[f"web-{n}"] > freed]
        if waiting:
            assert after - freed <= 0.25 + 1e-9, f"budget free at {freed:.2f} unused until {after:.2f}"


def test_a_refused_eviction_is_asked_again_at_one_pace_however_long_the_drain_has_waited():
    refused = drain.DrainLook(["shop/web-1"], "refused", refused=True)
    assert {refused.next_look(n) for n in (0, 1, 4, 40, 10**6)} == {drain.BUDGET_RETRY_SECONDS}


@pytest.mark.parametrize("carried", [{}, {"evicted": "x"}, {"evicted": [1, 2]}, {"blocked_retries": True},
                                     {"deleted": None, "evicted": ["a/b"]}])
def test_whatever_was_carried_makes_a_report(carried):
    report = drain.DrainReport.from_carried(carried)
    assert all(isinstance(n, str) for n in report.evicted + report.deleted)
    assert isinstance(report.blocked_retries, int) and not isinstance(report.blocked_retries, bool)
