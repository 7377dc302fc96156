"""Node operations: read, cordon and uncordon, readiness and version."""

from __future__ import annotations

from enum import Enum
from typing import Any

from kubeupgrade.kube.client import KubeApi, KubeRefused


def get_node(api: KubeApi, name: str) -> dict[str, Any]:
    return api.call(f"read node {name}", api.core.read_node, name)


def list_nodes(api: KubeApi) -> list[dict[str, Any]]:
    return api.call("list nodes", api.core.list_node)["items"]


def is_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []))


def kubelet_version(node: dict[str, Any]) -> str:
    return node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")


def is_cordoned(node: dict[str, Any]) -> bool:
    return bool(node.get("spec", {}).get("unschedulable"))


# Who cordoned a node is kept on the Node itself, set in the same PATCH that cordons it, so
# ownership survives anything that happens to our own record (a lost write during a broker
# restart, a killed controller): a re-run drain recognises its own cordon, and uncordon only
# ever releases a node this campaign cordoned.
CORDONED_BY = "kubeupgrade.io/cordoned-by"


class CordonOwner(Enum):
    CORDONED = "cordoned"  # this call cordoned it
    OURS = "ours"  # already cordoned by this campaign (a re-run)
    ADOPTED = "adopted"  # cordoned by an earlier kubeupgrade campaign: now this one's
    FOREIGN = "foreign"  # cordoned by someone else: never ours to uncordon


def cordoned_by(node: dict[str, Any]) -> str | None:
    """The campaign that cordoned this node, if a kubeupgrade campaign did and it still is."""
    if not is_cordoned(node):
        return None
    return (node.get("metadata", {}).get("annotations") or {}).get(CORDONED_BY)


def cordon_node(api: KubeApi, name: str, campaign: str) -> CordonOwner:
    """Cordon the node on behalf of `campaign`, recording the owner on the node."""
    node = get_node(api, name)
    owner = cordoned_by(node)
    if owner == campaign:
        return CordonOwner.OURS
    if is_cordoned(node) and owner is None:
        return CordonOwner.FOREIGN
    api.call(f"cordon {name}", api.core.patch_node, name,
             {"metadata": {"annotations": {CORDONED_BY: campaign}}, "spec": {"unschedulable": True}})
    return CordonOwner.ADOPTED if owner else CordonOwner.CORDONED


def uncordon_node(api: KubeApi, name: str, campaign: str) -> bool:
    """Uncordon the node if (and only if) `campaign` cordoned it; True if this call did.

    One request: a JSON patch whose tests are that the node is cordoned and that the annotation
    names `campaign`. The API server applies all of it or none (422 when a test fails), so no
    one's cordon can slip in between a read and the write, as it could with a read first."""
    owner = f"/metadata/annotations/{CORDONED_BY.replace('~', '~0').replace('/', '~1')}"
    patch = [{"op": "test", "path": "/spec/unschedulable", "value": True},
             {"op": "test", "path": owner, "value": campaign},
             {"op": "remove", "path": owner},
             {"op": "remove", "path": "/spec/unschedulable"}]
    try:
        api.call(f"uncordon {name}", api.core.patch_node, name, patch)
    except KubeRefused as refused:
        if refused.code != 422 or cordoned_by(get_node(api, name)) == campaign:
            raise  # not a failed test: the node is ours and still cordoned
        return False
    return True


def nodes_cordoned_by(api: KubeApi, campaign: str) -> list[str]:
    return sorted(n["metadata"]["name"] for n in list_nodes(api) if cordoned_by(n) == campaign)
