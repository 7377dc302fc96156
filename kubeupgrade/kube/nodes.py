"""Node operations: read, cordon and uncordon, readiness and version."""

from __future__ import annotations

from enum import Enum
from typing import Any

from kubeupgrade.kube.client import KubeApi


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
    """Uncordon the node if (and only if) `campaign` cordoned it; True if this call did."""
    if cordoned_by(get_node(api, name)) != campaign:
        return False
    api.call(f"uncordon {name}", api.core.patch_node, name,
             {"metadata": {"annotations": {CORDONED_BY: None}}, "spec": {"unschedulable": None}})
    return True


def nodes_cordoned_by(api: KubeApi, campaign: str) -> list[str]:
    return sorted(n["metadata"]["name"] for n in list_nodes(api) if cordoned_by(n) == campaign)
