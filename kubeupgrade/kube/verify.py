"""Verification after a hop: every node Ready at the target, static pods and addons updated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.discovery import CONTROL_PLANE_COMPONENTS, control_plane_images, tag_of
from kubeupgrade.kube.nodes import is_cordoned, is_ready, kubelet_version, read_nodes
from kubeupgrade.model.versions import KubeVersion


@dataclass(frozen=True)
class VerificationRow:
    name: str
    ready: bool
    kubelet: str
    control_plane: str
    schedulable: bool


@dataclass(frozen=True)
class Verification:
    rows: list[VerificationRow]
    problems: list[str]  # empty when the hop is complete
    # Whether a component is at another version than the target: after every planned phase
    # succeeded, the cluster changed under the campaign (kubeadm rolled a control plane back,
    # or someone else acted), which no retry of the verification mends.
    versions_behind: bool
    # Control planes with a static pod behind: the cluster changed, or the pod has not come up
    # at its new version (a kubeadm stopped half-way leaves the manifest written, and its re-run
    # skips a manifest already at the target), which is the node's kubelet to mend.
    static_pods_behind: tuple[str, ...] = ()


def verify_cluster(api: KubeApi, version: KubeVersion,
                   left_alone: frozenset[str] = frozenset()) -> Verification:
    """The verification table and the problems found. Workers `left_alone` (out of the
    campaign's scope) must be Ready but keep their kubelet."""
    images = control_plane_images(api)

    def row_of(node: dict[str, Any]) -> VerificationRow:
        name = node["metadata"]["name"]
        return VerificationRow(name, is_ready(node), kubelet_version(node),
                               images.get(name, {}).get("kube-apiserver", ""), not is_cordoned(node))

    # Of each node only its row is kept, a page of the list at a time: a 5,000-node list whole
    # is ~18 MB of JSON.
    rows = read_nodes(api, row_of)
    problems = []
    behind = False
    static_behind: list[str] = []
    for row in rows:
        name = row.name
        components = images.get(name, {})
        # kubeadm's three only: etcd keeps versions of its own, and a static pod of the
        # operator's labelled tier=control-plane (a kube-vip, an haproxy) is not kubeadm's to move.
        stale = sorted(c for c in CONTROL_PLANE_COMPONENTS if c in components and components[c] != version.tag)
        if not row.ready:
            problems.append(f"node {name} is not Ready")
        if row.kubelet != version.tag and name not in left_alone:
            problems.append(f"node {name} kubelet is {row.kubelet}, expected {version.tag}")
            behind = True
        if stale:
            problems.append(f"node {name} static pods not at {version.tag}: {', '.join(stale)}")
            behind = True
            static_behind.append(name)
    proxy = api.call("read kube-proxy", api.apps.read_namespaced_daemon_set, "kube-proxy", "kube-system")
    proxy_tag = tag_of(proxy["spec"]["template"]["spec"]["containers"][0]["image"])
    if proxy_tag != version.tag:
        problems.append(f"kube-proxy is {proxy_tag}, expected {version.tag}")
        behind = True
    from kubeupgrade.kube.windows_proxy import stale_images, windows_proxy_daemonsets

    for windows_proxy in windows_proxy_daemonsets(api):
        if stale_images(windows_proxy, version):
            problems.append(f"{windows_proxy['metadata']['name']} (kube-proxy for Windows) is not at "
                            f"{version.tag}")
            behind = True
    coredns = api.call("read coredns", api.apps.read_namespaced_deployment, "coredns", "kube-system")
    status = coredns.get("status", {})
    if status.get("readyReplicas", 0) < coredns["spec"].get("replicas", 1):
        problems.append("CoreDNS is not fully available")
    return Verification(rows, problems, behind, tuple(static_behind))
