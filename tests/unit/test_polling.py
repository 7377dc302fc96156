"""Waiting on the cluster looks again soon, then at most once a second: a wait of a pod's grace
period costs a few dozen lists, not one every 0.2 s."""

from itertools import islice

import pytest

from kubeupgrade.errors import PermanentError
from kubeupgrade.kube import drain
from kubeupgrade.kube.polling import poll_delays


def test_delays_start_short_double_and_stop_at_a_second():
    delays = list(islice(poll_delays(), 10))
    assert delays[0] == 0.05
    assert all(b == min(a * 2, 1.0) for a, b in zip(delays, delays[1:]))
    assert delays[-1] == 1.0


class _Cluster:
    """A node whose evicted pod takes `grace` seconds to go, on a clock the waits advance."""

    def __init__(self, grace):
        self.now = 0.0
        self.grace = grace
        self.lists = 0
        self.core = self

    def list_pod_for_all_namespaces(self, **kwargs):
        return None

    def call(self, what, method, *args, **kwargs):
        self.lists += 1
        gone = self.now >= self.grace
        return {"items": [] if gone else [{"metadata": {"namespace": "shop", "name": "web-1"}}]}

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize("grace", [0.0, 0.03, 1.0, 30.0, 120.0])
def test_waiting_for_evicted_pods_lists_about_once_a_second(grace):
    cluster = _Cluster(grace)
    drain._wait_gone(cluster, "worker-1", ["shop/web-1"], deadline=1_000.0,
                     clock=lambda: cluster.now, sleep=cluster.sleep)
    assert cluster.now >= grace
    assert cluster.now < grace + 1.0 + 1e-9  # seen gone within a second of going
    assert cluster.lists <= grace + 6  # 0.05, 0.1, 0.2, 0.4, 0.8, then 1 s each


def test_a_pod_that_never_goes_fails_the_drain_at_the_deadline_naming_it():
    cluster = _Cluster(float("inf"))
    with pytest.raises(PermanentError, match="pods still on worker-1 after eviction: shop/web-1"):
        drain._wait_gone(cluster, "worker-1", ["shop/web-1"], deadline=60.0,
                         clock=lambda: cluster.now, sleep=cluster.sleep)
    assert 60.0 < cluster.now <= 61.0 and cluster.lists <= 66
