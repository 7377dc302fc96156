"""The sandbox store's pods-by-node index answers a `spec.nodeName=X` list exactly as a scan of
every pod would, whatever sequence of writes came before (create, bind in place then store,
patch, replace, delete, reload from a snapshot)."""

import json
import random

import pytest

from kubeupgrade.kube.selectors import field_selector
from kubeupgrade.sandbox.store import ApiError, Store

NODES = ["worker-1", "worker-2", "worker-3"]


def _scan(store, selector):
    """What the list answered before the index: every pod, filtered."""
    node = selector.split("=", 1)[1]
    return sorted(key for key, pod in store.objects["pods"].items()
                  if (pod.get("spec") or {}).get("nodeName", "") == node)


def _listed(store, selector, namespace=None):
    return sorted((p["metadata"]["namespace"], p["metadata"]["name"])
                  for p in store.list("pods", namespace, field_selector=selector))


def _random_writes(store, rng, steps, prefix):
    for step in range(steps):
        pods = list(store.objects["pods"].values())
        action = rng.choice(["create", "create", "bind", "patch", "replace", "delete"])
        if action == "create" or not pods:
            spec = {"containers": [{"name": "c", "image": "i"}]}
            if rng.random() < 0.5:
                spec["nodeName"] = rng.choice(NODES)
            store.create("pods", rng.choice(["default", "kube-system"]),
                         {"metadata": {"name": f"{prefix}{step}"}, "spec": spec})
            continue
        pod = rng.choice(pods)
        meta = pod["metadata"]
        if action == "bind":  # as the simulated scheduler does: in place, then stored
            pod["spec"]["nodeName"] = rng.choice(NODES)
            store.put_internal("pods", pod)
        elif action == "patch":
            store.patch("pods", meta["namespace"], meta["name"],
                        {"spec": {"nodeName": rng.choice(NODES + [None])}},
                        "application/merge-patch+json")
        elif action == "replace":
            body = {"metadata": {"name": meta["name"]}, "spec": {**pod["spec"], "nodeName": rng.choice(NODES)}}
            store.replace("pods", meta["namespace"], meta["name"], body)
        else:
            store.delete("pods", meta["namespace"], meta["name"])


@pytest.mark.parametrize("seed", range(20))
def test_listing_one_nodes_pods_matches_a_scan_after_any_writes(seed):
    rng = random.Random(seed)
    store = Store()
    for namespace in ("default", "kube-system"):
        store.create("namespaces", None, {"metadata": {"name": namespace}})
    _random_writes(store, rng, 200, "before")
    reloaded = Store(json.loads(json.dumps(store.snapshot())))  # as the server reloads state.json
    _random_writes(reloaded, rng, 50, "after")
    for each in (store, reloaded):
        for node in NODES + [""]:
            selector = f"spec.nodeName={node}"
            assert _listed(each, selector) == _scan(each, selector)
            assert _listed(each, selector.replace("=", "==")) == _scan(each, selector)
            assert all(ns == "kube-system" for ns, _ in _listed(each, selector, "kube-system"))
            # the node's term among others (either side): the index narrows, the rest still holds
            for combined in (f"metadata.namespace=kube-system,{selector}",
                             f"{selector},metadata.namespace!=kube-system"):
                matches = field_selector(combined)
                assert _listed(each, combined) == sorted(
                    key for key, pod in each.objects["pods"].items() if matches(pod))


def test_other_field_selectors_still_scan_and_bad_ones_are_refused():
    store = Store()
    store.create("namespaces", None, {"metadata": {"name": "default"}})
    for index, node in enumerate(NODES):
        store.create("pods", "default", {"metadata": {"name": f"p{index}"},
                                         "spec": {"nodeName": node, "containers": []}})
    assert len(store.list("pods", field_selector="spec.nodeName!=worker-1")) == 2
    assert [p["metadata"]["name"] for p in store.list(
        "pods", field_selector="spec.nodeName=worker-2,metadata.name=p1")] == ["p1"]
    with pytest.raises(ApiError):
        store.list("pods", field_selector="spec.nodeName")


@pytest.mark.parametrize("seed", range(10))
def test_the_state_text_reencoding_only_written_objects_reads_back_as_the_whole_state(seed):
    from kubeupgrade.sandbox.snapshot import SnapshotText

    rng = random.Random(seed)
    store, history, written = Store(), [], SnapshotText()
    for namespace in ("default", "kube-system"):
        store.create("namespaces", None, {"metadata": {"name": namespace}})
    for round_ in range(15):
        _random_writes(store, rng, rng.randrange(0, 30), f"r{round_}-")
        history += [{"node": rng.choice(NODES), "event": "cordon"} for _ in range(rng.randrange(3))]
        whole = {**store.snapshot(), "history": history}
        assert json.loads(written.text(store, history)) == whole
    # A server restarted from that text carries on from the same state.
    reloaded = Store(json.loads(written.text(store, history)))
    assert reloaded.snapshot() == store.snapshot()
