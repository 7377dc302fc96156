"""The drain preview (a dry run of every node's drain) through the official client against the
sandbox API server: read in pages of any size and keeping only each pod's drain view, it decides
for each node what deciding on that node's own whole pods decides, and evicts nothing."""

from __future__ import annotations

import pytest

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.drain import _list_pods, namespaced_name, pods_to_evict, preview_drains
from kubeupgrade.model.campaign import DrainPolicy
from tests.helpers import sandbox_up

pytestmark = pytest.mark.integration

BARE = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug-shell", "namespace": "default"},
        "spec": {"nodeName": "worker-2", "containers": [{"name": "sh", "image": "busybox:1.36"}]}}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with sandbox_up(tmp_path_factory.mktemp("preview") / "box", control_planes=1, workers=5,
                    version="1.30.4", objects={"pods": [BARE]}) as box:
        client = KubeApi(str(box.kubeconfig))
        yield client
        client.close()


def all_pods(api) -> list[str]:
    return sorted(namespaced_name(p) for p in api.call("list pods", api.core.list_pod_for_all_namespaces)["items"])


POLICIES = {"keep-emptydir": DrainPolicy(), "delete-emptydir": DrainPolicy(delete_emptydir_data=True),
            "selector": DrainPolicy(pod_selector="app!=web")}


@pytest.mark.parametrize("policy", POLICIES.values(), ids=POLICIES.keys())
def test_the_paged_preview_decides_as_each_nodes_own_whole_pods(api, policy):
    nodes = ["control-plane-1", "worker-1", "worker-2", "worker-3", "worker-5"]  # not worker-4
    before = all_pods(api)
    whole = preview_drains(api, nodes, policy)  # 500 a page: one page
    for size in (1, 2, 7):
        assert preview_drains(api, nodes, policy, page_size=size) == whole
    assert sorted(whole) == sorted(nodes)
    for node in nodes:
        selected = None
        if policy.pod_selector:
            selected = {namespaced_name(p) for p in _list_pods(api, node, policy.pod_selector)}
        evict, skipped, refusals = pods_to_evict(_list_pods(api, node), policy, selected)
        preview = whole[node]
        assert preview.skipped == skipped and preview.blocked[:len(refusals)] == refusals, node
        budget_blocked = [b.split(":", 1)[0] for b in preview.blocked[len(refusals):]]
        assert sorted(preview.evicts + budget_blocked) == sorted(namespaced_name(p) for p in evict), node
    assert all_pods(api) == before  # a dry run: nothing evicted
    refused = [b for p in whole.values() for b in p.blocked]
    assert any(b.startswith("default/debug-shell has no controller") for b in refused)
    scratch = [b for b in refused if "uses emptyDir" in b]
    assert bool(scratch) == (policy == POLICIES["keep-emptydir"]), refused
    assert any(p.evicts for p in whole.values()) and any(p.skipped for p in whole.values())
