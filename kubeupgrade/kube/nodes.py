"""Node operations: read, cordon and uncordon, readiness and version."""

from __future__ import annotations

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


def cordon_node(api: KubeApi, name: str) -> bool:
    """Mark the node unschedulable; True if this call changed it (so uncordon is ours to do)."""
    if is_cordoned(get_node(api, name)):
        return False
    api.call(f"cordon {name}", api.core.patch_node, name, {"spec": {"unschedulable": True}})
    return True


def uncordon_node(api: KubeApi, name: str) -> bool:
    if not is_cordoned(get_node(api, name)):
        return False
    api.call(f"uncordon {name}", api.core.patch_node, name, {"spec": {"unschedulable": None}})
    return True
