"""A fresh sandbox cluster is a running one: each workload's status already counts its pods, as
a real cluster's controllers would have reported it, so a reader of the status sees it from the
first request."""

import pytest

from kubeupgrade.sandbox import disruption, objects


def _config(control_planes, linux_workers, windows_workers):
    nodes = [{"name": f"cp-{i}", "role": "control-plane", "os": "apt"} for i in range(1, control_planes + 1)]
    nodes += [{"name": f"worker-{i}", "role": "worker", "os": "apt"} for i in range(1, linux_workers + 1)]
    nodes += [{"name": f"win-{i}", "role": "worker", "os": "windows"} for i in range(1, windows_workers + 1)]
    return {"version": "v1.30.4", "nodes": nodes, "seed": 7}


def _owned(pods, owner):
    return [p for p in pods if (disruption.controller_of(p) or {}).get("uid") == owner["metadata"]["uid"]]


@pytest.mark.parametrize("layout", [(1, 0, 0), (2, 1, 0), (3, 5, 2), (1, 0, 3)])
def test_every_workload_status_counts_its_ready_pods(layout):
    out = objects.initial_objects(_config(*layout))
    pods = out["pods"]
    for deployment in out["deployments"]:
        sets = _owned(out["replicasets"], deployment)
        owned = [p for rs in sets for p in _owned(pods, rs)]
        ready = sum(1 for p in owned if disruption.is_pod_ready(p))
        assert deployment["status"]["readyReplicas"] == ready, deployment["metadata"]["name"]
        assert deployment["status"]["replicas"] == len(owned) == deployment["spec"]["replicas"]
        for rs in sets:
            assert rs["status"]["readyReplicas"] == sum(1 for p in _owned(pods, rs) if disruption.is_pod_ready(p))
    for ds in out["daemonsets"]:
        owned = _owned(pods, ds)
        assert ds["status"]["numberReady"] == sum(1 for p in owned if disruption.is_pod_ready(p))
        assert ds["status"]["desiredNumberScheduled"] == len(owned)


def test_coredns_is_available_from_the_start_when_a_node_can_run_it():
    out = objects.initial_objects(_config(2, 1, 0))
    coredns = next(d for d in out["deployments"] if d["metadata"]["name"] == "coredns")
    assert coredns["status"]["readyReplicas"] == coredns["spec"]["replicas"] == 2
