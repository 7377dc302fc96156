"""What a drain evicts, skips and refuses (pods_to_evict), and that a pod's drain_view, which the
drain preview keeps of each pod of the cluster instead of the whole pod, is decided the same."""

from __future__ import annotations

import itertools
import json

import pytest

from kubeupgrade.kube.drain import MIRROR_ANNOTATION, drain_view, namespaced_name, pods_to_evict
from kubeupgrade.model.campaign import DrainPolicy

OWNERS = {
    "none": None,
    "replicaset": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "uid": "u1",
                    "controller": True, "blockOwnerDeletion": True}],
    "daemonset": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": "u2",
                   "controller": True}],
    "node": [{"apiVersion": "v1", "kind": "Node", "name": "worker-1", "uid": "u3", "controller": True}],
    # An owner that is not the controller (a garbage-collection owner) does not make a controller.
    "not-controller": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u4"}],
    "second-is-controller": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u4"},
                             {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u5",
                              "controller": True}],
    "controller-false": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "u6",
                          "controller": False}],
}
ANNOTATIONS = {"none": None, "empty": {}, "other": {"prometheus.io/scrape": "true"},
               "mirror": {MIRROR_ANNOTATION: "0f1e2d", "kubernetes.io/config.source": "file"}}
VOLUMES = {"none": None, "config": [{"name": "cfg", "configMap": {"name": "cfg"}}],
           "emptydir": [{"name": "token", "projected": {"sources": []}},
                        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}]}
PHASES = [None, "Pending", "Running", "Succeeded", "Failed", "Unknown"]


def pod(index: int, owner: str, annotations: str, volumes: str, phase: str | None,
        null_status: bool = False) -> dict:
    """A pod as the API server lists it, with fields a drain does not read (containers,
    conditions, labels) around those it does."""
    meta: dict = {"name": f"pod-{index}", "namespace": ("shop", "kube-system")[index % 2],
                  "uid": f"uid-{index}", "resourceVersion": str(100 + index),
                  "labels": {"app": "web", "pod-template-hash": "5d9c"},
                  "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                     "fieldsV1": {"f:metadata": {"f:labels": {}}}}]}
    if OWNERS[owner] is not None:
        meta["ownerReferences"] = OWNERS[owner]
    if ANNOTATIONS[annotations] is not None:
        meta["annotations"] = ANNOTATIONS[annotations]
    spec: dict = {"nodeName": "worker-1", "containers": [{"name": "c", "image": "registry.example/c:1",
                                                          "resources": {"requests": {"cpu": "100m"}}}]}
    if VOLUMES[volumes] is not None:
        spec["volumes"] = VOLUMES[volumes]
    whole: dict = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    if null_status:
        whole["status"] = None
    elif phase is not None:
        whole["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}],
                           "podIP": "10.244.1.7"}
    return whole


def every_kind_of_pod() -> list[dict]:
    combos = itertools.product(OWNERS, ANNOTATIONS, VOLUMES, PHASES)
    pods = [pod(i, *combo) for i, combo in enumerate(combos)]
    return pods + [pod(len(pods), "replicaset", "none", "emptydir", None, null_status=True)]


POLICIES = [DrainPolicy(), DrainPolicy(delete_emptydir_data=True)]


def decisions(pods, policy, selected):
    evict, skipped, refusals = pods_to_evict(pods, policy, selected)
    return [namespaced_name(p) for p in evict], skipped, refusals


@pytest.mark.parametrize("policy", POLICIES, ids=["keep-emptydir", "delete-emptydir"])
@pytest.mark.parametrize("selection", ["all", "even", "none"])
def test_the_view_of_each_pod_is_decided_as_the_whole_pod(policy, selection):
    pods = every_kind_of_pod()
    selected = {"all": None, "none": set(),
                "even": {namespaced_name(p) for i, p in enumerate(pods) if i % 2 == 0}}[selection]
    views = [drain_view(p) for p in pods]
    assert decisions(views, policy, selected) == decisions(pods, policy, selected)
    # and each decision on its own, in case two wrong ones cancel out in the lists
    for whole, view in zip(pods, views):
        assert decisions([view], policy, selected) == decisions([whole], policy, selected), whole


def test_the_view_keeps_the_node_and_what_an_eviction_names_and_little_else():
    pods = every_kind_of_pod()
    for whole in pods:
        view = drain_view(whole)
        assert view["spec"]["nodeName"] == "worker-1"
        assert view["metadata"]["name"] == whole["metadata"]["name"]
        assert view["metadata"]["namespace"] == whole["metadata"]["namespace"]
        assert "managedFields" not in view["metadata"] and "containers" not in view["spec"]
    whole_size = len(json.dumps(pods))
    view_size = len(json.dumps([drain_view(p) for p in pods]))
    assert view_size * 4 < whole_size, (view_size, whole_size)


def test_a_view_of_a_view_is_the_view():
    for whole in every_kind_of_pod():
        assert drain_view(drain_view(whole)) == drain_view(whole)


def test_what_a_drain_skips_evicts_and_refuses():
    mirror = pod(1, "node", "mirror", "none", "Running")
    daemon = pod(2, "daemonset", "none", "emptydir", "Running")
    bare = pod(3, "none", "none", "none", "Running")
    finished_bare = pod(4, "none", "none", "emptydir", "Succeeded")
    scratch = pod(5, "replicaset", "none", "emptydir", "Running")
    plain = pod(6, "second-is-controller", "other", "config", "Running")
    loose = pod(7, "not-controller", "none", "none", "Running")
    pods = [mirror, daemon, bare, finished_bare, scratch, plain, loose]
    evict, skipped, refusals = decisions(pods, DrainPolicy(), None)
    assert skipped == [namespaced_name(mirror), namespaced_name(daemon)]
    assert evict == [namespaced_name(finished_bare), namespaced_name(plain)]
    assert [r.split(" ", 1)[0] for r in refusals] == [namespaced_name(p) for p in (bare, scratch, loose)]
    assert "has no controller" in refusals[0] and "delete_emptydir_data: true" in refusals[1]
    evict, _, refusals = decisions(pods, DrainPolicy(delete_emptydir_data=True), None)
    assert namespaced_name(scratch) in evict and len(refusals) == 2
    # A pod the campaign's selector leaves out stays, whatever it is.
    evict, skipped, refusals = decisions(pods, DrainPolicy(), {namespaced_name(plain)})
    assert evict == [namespaced_name(plain)] and refusals == [] and len(skipped) == len(pods) - 1
