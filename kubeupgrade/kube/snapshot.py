"""A cluster's shape, read without changing anything, and mirrored onto a sandbox: what a
rehearsal needs to run the campaign somewhere else and meet the same blockers.

Reading uses get and list only. What is kept is what an upgrade meets: nodes (names, roles,
labels, the host OS their `osImage` names, the kubelet's version and a control plane's
kube-apiserver version), namespaces, the workloads and their pods (owners,
volumes, node selectors, tolerations, the node each pod runs on), PodDisruptionBudgets, and
kubeadm's ClusterConfiguration version. ConfigMaps and Secrets are never read beyond
`kube-system/kubeadm-config`; containers' `env` and `envFrom` are dropped (their values may be
secrets), commands and images are copied as the specs hold them.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.discovery import CONTROL_PLANE_LABEL, cluster_version, tag_of
from kubeupgrade.kube.nodes import list_nodes

# Made by kubeadm and the sandbox alike: the mirror has its own, at the cluster's version.
_KUBEADM_OWNED = {("kube-system", "coredns"), ("kube-system", "kube-proxy"), ("kube-system", "kube-proxy-windows")}
_SECRET_FIELDS = ("env", "envFrom")  # values may be secrets; a rehearsal does not need them
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class NodeShape:
    name: str
    role: str  # control-plane | worker
    os: str  # apt | dnf | yum | windows (from the node's osImage)
    labels: dict[str, str]
    guessed_os: bool = False  # osImage named no distribution we know: apt assumed
    kubelet: str = ""  # the version its kubelet reports
    control_plane: str = ""  # a control plane's kube-apiserver image tag
    package_manager: str = ""  # "dnf5" where the dnf family's dnf is dnf 5; else its family's default


@dataclass(frozen=True)
class ClusterSnapshot:
    version: str  # kubeadm-config's kubernetesVersion
    nodes: tuple[NodeShape, ...]
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # plural -> objects

    def count(self, plural: str) -> int:
        return len(self.objects.get(plural, []))


def host_os(node: dict[str, Any]) -> tuple[str, bool]:
    """(platform, guessed) from what the node reports about its OS."""
    info = node.get("status", {}).get("nodeInfo", {})
    if info.get("operatingSystem") == "windows":
        return "windows", False
    image = info.get("osImage", "").lower()
    if any(name in image for name in ("ubuntu", "debian")):
        return "apt", False
    if "centos linux 7" in image or "red hat enterprise linux server 7" in image:
        return "yum", False
    if any(name in image for name in ("red hat", "rhel", "rocky", "alma", "centos", "fedora", "oracle")):
        return "dnf", False
    return "apt", True


_FEDORA_RELEASE = re.compile(r"\bfedora(?: linux)? (\d+)\b")


def package_manager(node: dict[str, Any]) -> str:
    """"dnf5" where the node's osImage names a release whose dnf is dnf 5 (Fedora 41 and later;
    RHEL and its rebuilds keep dnf 4), else "" (the family's default)."""
    image = node.get("status", {}).get("nodeInfo", {}).get("osImage", "").lower()
    fedora = _FEDORA_RELEASE.search(image)
    return "dnf5" if fedora and int(fedora[1]) >= 41 else ""


def take_snapshot(api: KubeApi) -> ClusterSnapshot:
    """Read the cluster's shape: get and list calls only."""
    version = cluster_version(api).tag
    listed = {
        "namespaces": api.call("list namespaces", api.core.list_namespace)["items"],
        "deployments": api.call("list Deployments", api.apps.list_deployment_for_all_namespaces)["items"],
        "replicasets": api.call("list ReplicaSets", api.apps.list_replica_set_for_all_namespaces)["items"],
        "statefulsets": api.call("list StatefulSets", api.apps.list_stateful_set_for_all_namespaces)["items"],
        "daemonsets": api.call("list DaemonSets", api.apps.list_daemon_set_for_all_namespaces)["items"],
        "poddisruptionbudgets": api.call("list PodDisruptionBudgets",
                                         api.policy.list_pod_disruption_budget_for_all_namespaces)["items"],
        "pods": api.call("list pods", api.core.list_pod_for_all_namespaces)["items"],
    }
    apiservers = {pod["spec"].get("nodeName"): tag_of(pod["spec"]["containers"][0]["image"])
                  for pod in listed["pods"] if pod["metadata"]["namespace"] == "kube-system"
                  and (pod["metadata"].get("labels") or {}).get("component") == "kube-apiserver"}
    nodes = []
    for node in list_nodes(api):
        name, labels = node["metadata"]["name"], node["metadata"].get("labels") or {}
        platform, guessed = host_os(node)
        control_plane = CONTROL_PLANE_LABEL in labels
        nodes.append(NodeShape(name, "control-plane" if control_plane else "worker", platform,
                               {str(k): str(v) for k, v in labels.items()}, guessed,
                               node["status"]["nodeInfo"]["kubeletVersion"],
                               apiservers.get(name, "") if control_plane else "",
                               package_manager(node) if platform == "dnf" else ""))
    objects = {plural: [_shape(obj) for obj in items if _kept(plural, obj)] for plural, items in listed.items()}
    return ClusterSnapshot(version, tuple(nodes), objects)


def _kept(plural: str, obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    if (meta.get("namespace"), meta["name"]) in _KUBEADM_OWNED:
        return False
    if plural == "pods":
        owner = _controller(obj)
        # Mirror pods are the hosts' own; DaemonSet and kubeadm add-on pods are made again
        # by the mirror's controllers.
        return (MIRROR_ANNOTATION not in (meta.get("annotations") or {})
                and (owner is None or owner["kind"] in ("ReplicaSet", "StatefulSet"))
                and not (meta.get("namespace") == "kube-system" and owner is not None
                         and meta["name"].startswith("coredns-")))
    if plural == "replicasets":
        return not (meta.get("namespace") == "kube-system" and meta["name"].startswith("coredns-"))
    return True


def _controller(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((o for o in obj["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def _shape(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as it can be created again elsewhere: no status, uids or server fields, and
    no environment values (they may hold secrets)."""
    meta = obj["metadata"]
    kept: dict[str, Any] = {"name": meta["name"]}
    for key in ("namespace", "labels"):
        if meta.get(key):
            kept[key] = copy.deepcopy(meta[key])
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not k.startswith("kubectl.kubernetes.io/") and k != "deployment.kubernetes.io/revision"}
    if annotations:
        kept["annotations"] = annotations
    owner = _controller(obj)
    if owner is not None:
        kept["owner"] = {"kind": owner["kind"], "name": owner["name"]}
    shaped = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept,
              "spec": copy.deepcopy(obj.get("spec") or {})}
    for spec in _pod_specs(shaped):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for secret in _SECRET_FIELDS:
                container.pop(secret, None)
    return shaped


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if "template" in spec:
        return [spec["template"].get("spec") or {}]
    return [spec] if "containers" in spec else []


# -- mirror ---------------------------------------------------------------------------------------
_API_VERSIONS = {"deployments": "apps/v1", "replicasets": "apps/v1", "statefulsets": "apps/v1",
                 "daemonsets": "apps/v1", "poddisruptionbudgets": "policy/v1", "pods": "v1",
                 "namespaces": "v1"}
_KINDS = {"deployments": "Deployment", "replicasets": "ReplicaSet", "statefulsets": "StatefulSet",
          "daemonsets": "DaemonSet", "poddisruptionbudgets": "PodDisruptionBudget", "pods": "Pod",
          "namespaces": "Namespace"}


_ORDER = ("namespaces", "deployments", "replicasets", "statefulsets", "daemonsets",
          "poddisruptionbudgets", "pods")


def mirror_objects(snapshot: ClusterSnapshot) -> dict[str, list[dict[str, Any]]]:
    """The snapshot's objects as a mirror sandbox starts with them (Sandbox.up(objects=...)):
    owners first, each owned object pointing at its owner's new uid, each pod on the node it
    ran on. An object whose owner is not mirrored is left out: the mirror makes kubeadm's and
    the DaemonSets' pods itself. Pure: a mirror of 30,000 pods is built in one step, not
    30,000 API calls."""
    mirrored: dict[str, list[dict[str, Any]]] = {}
    uids: dict[tuple[str, str, str], str] = {}  # (kind, namespace, name) -> new uid
    for plural in _ORDER:
        for obj in snapshot.objects.get(plural, []):
            meta = copy.deepcopy(obj["metadata"])
            owner = meta.pop("owner", None)
            namespace = meta.get("namespace", "")
            if owner is not None:
                uid = uids.get((owner["kind"], namespace, owner["name"]))
                if uid is None:
                    continue
                meta["ownerReferences"] = [{"apiVersion": "v1" if owner["kind"] == "Node" else "apps/v1",
                                            "kind": owner["kind"], "name": owner["name"], "uid": uid,
                                            "controller": True, "blockOwnerDeletion": True}]
            meta["uid"] = str(uuid.uuid4())
            uids[(_KINDS[plural], namespace, meta["name"])] = meta["uid"]
            mirrored.setdefault(plural, []).append({
                "apiVersion": _API_VERSIONS[plural], "kind": _KINDS[plural], "metadata": meta,
                "spec": copy.deepcopy(obj.get("spec") or {})})
    return mirrored
