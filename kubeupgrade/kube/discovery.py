"""Read the cluster as it is: nodes, roles, kubelet and control-plane versions, health."""

from __future__ import annotations

from typing import Any

import yaml

from kubeupgrade.errors import InvalidInput, PermanentError
from kubeupgrade.host.kubelet_flags import fails_swap_on
from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.nodes import (
    cordon_epoch,
    cordoned_by,
    get_node,
    is_ready,
    kubelet_version,
    read_nodes,
)
from kubeupgrade.model.campaign import NodeSpec, OsFamily, Role
from kubeupgrade.model.versions import KubeVersion, parse_version

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
# The components `kubeadm upgrade apply|node` replaces on a control plane, one after another
# (etcd keeps versions of its own).
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def control_plane_pods(api: KubeApi) -> list[dict[str, Any]]:
    """The control-plane mirror pods (kube-apiserver, controller-manager, scheduler, etcd)."""
    return list(api.call("list control-plane pods", api.core.list_namespaced_pod, "kube-system",
                         label_selector="tier=control-plane")["items"])


def tag_of(image: str) -> str:
    """The tag of an image reference: v1.31.2 of registry.k8s.io/kube-apiserver:v1.31.2, also
    when a digest follows it (`...:v1.31.2@sha256:...`, as an admission policy that pins
    digests writes it) or the registry has a port; "" where it has no tag."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def image_tag(pod: dict[str, Any]) -> str:
    """The tag of the pod's first container's image."""
    return tag_of(str(pod["spec"]["containers"][0]["image"]))


def images_of(pods: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """node -> component -> image tag, from the control-plane mirror pods."""
    images: dict[str, dict[str, str]] = {}
    for pod in pods:
        component = pod["metadata"].get("labels", {}).get("component")
        node = pod["spec"].get("nodeName")
        if component and node:
            images.setdefault(node, {})[component] = image_tag(pod)
    return images


def control_plane_images(api: KubeApi) -> dict[str, dict[str, str]]:
    return images_of(control_plane_pods(api))


def components_behind(api: KubeApi, node: str, version: KubeVersion) -> list[str]:
    """Which of the components kubeadm replaces on control plane `node` do not run `version`
    Ready yet, each with what its mirror pod shows; empty when all three do.

    kubeadm's exit 0 does not say so: a kubeadm stopped half-way has written a manifest whose
    pod is not up, and its re-run skips a manifest already at the target without waiting for
    it. The mirror pods are the kubelet's own account of what runs."""
    pods = api.call(f"list control-plane pods on {node}", api.core.list_namespaced_pod, "kube-system",
                    label_selector="tier=control-plane", field_selector=f"spec.nodeName={node}")["items"]
    by_component = {(pod["metadata"].get("labels") or {}).get("component"): pod for pod in pods}
    behind = []
    for component in CONTROL_PLANE_COMPONENTS:
        pod = by_component.get(component)
        if pod is None:
            behind.append(f"{component} has no mirror pod")
            continue
        tag = image_tag(pod)
        if tag != version.tag:
            behind.append(f"{component} at {tag}")
        elif not pod_ready(pod):
            behind.append(f"{component} not Ready")
    return behind


def control_plane_behind(api: KubeApi, node: str, version: KubeVersion) -> list[str]:
    """What control plane `node` still lacks of `version` as the cluster shows it: its own
    kubelet at the version and Ready, as its readiness wait requires, then its components
    (components_behind); empty when it has all of it."""
    shown = get_node(api, node)
    behind = []
    if kubelet_version(shown) != version.tag:
        behind.append(f"kubelet at {kubelet_version(shown) or 'no version'}")
    elif not is_ready(shown):
        behind.append("not Ready")
    return behind + components_behind(api, node, version)


def cluster_version(api: KubeApi) -> KubeVersion:
    configmap = api.call("read kubeadm-config", api.core.read_namespaced_config_map,
                         "kubeadm-config", "kube-system")
    return configured_version(configmap)


CLUSTER_CONFIGURATION = "kube-system/kubeadm-config: data.ClusterConfiguration"
REPAIR = "repair it (`kubeadm init phase upload-config kubeadm` on a control plane)"


def cluster_configuration(configmap: dict[str, Any]) -> dict[str, Any] | None:
    """The ClusterConfiguration kubeadm keeps in kube-system/kubeadm-config (written at `kubeadm
    init` and by every `kubeadm upgrade apply`), None where the ConfigMap holds none. One that
    is there but unreadable is the cluster's problem to name, not a traceback nor a guess:
    PermanentError, so the campaign is refused saying so."""
    data = configmap.get("data") if isinstance(configmap, dict) else None
    text = data.get("ClusterConfiguration") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        config = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as error:
        raise PermanentError(f"{CLUSTER_CONFIGURATION} is not YAML ({str(error).splitlines()[0][:120]}); "
                             f"{REPAIR}") from None
    if not isinstance(config, dict):
        raise PermanentError(f"{CLUSTER_CONFIGURATION} is not a mapping; {REPAIR}")
    return config


def configured_version(configmap: dict[str, Any]) -> KubeVersion:
    """The version kubeadm last recorded for the cluster (`kubernetesVersion`)."""
    config = cluster_configuration(configmap)
    if config is None:
        raise PermanentError(f"{CLUSTER_CONFIGURATION} is missing; kubeadm writes it at `kubeadm "
                             "init`: is this cluster set up by kubeadm?")
    version = config.get("kubernetesVersion")
    if not isinstance(version, str):
        raise PermanentError(f"{CLUSTER_CONFIGURATION} has no kubernetesVersion; {REPAIR}")
    try:
        return parse_version(version)
    except InvalidInput as error:
        raise PermanentError(f"{CLUSTER_CONFIGURATION}: kubernetesVersion: {error}") from None


def cluster_fails_swap_on(api: KubeApi) -> bool:
    """Whether the cluster's kubelet configuration (kube-system/kubelet-config, which `kubeadm
    upgrade` writes to every node it upgrades) has the kubelet refuse to start with swap on:
    failSwapOn, true unless set to false (read as the sandbox's kubelet reads its own)."""
    configmap = api.call("read kubelet-config", api.core.read_namespaced_config_map,
                         "kubelet-config", "kube-system")
    return fails_swap_on([], (configmap.get("data") or {}).get("kubelet"))


def discover_nodes(api: KubeApi, os_families: dict[str, OsFamily] | None = None) -> list[NodeSpec]:
    """Every node with its role (from the control-plane label) and live versions."""
    images = images_of(control_plane_pods(api))
    return read_nodes(api, lambda node: node_spec(node, images, os_families))


def node_spec(node: dict[str, Any], images: dict[str, dict[str, str]],
              os_families: dict[str, OsFamily] | None = None) -> NodeSpec:
    """A Node object as the planner sees it; `images` from images_of the control-plane pods."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    control_plane = CONTROL_PLANE_LABEL in labels
    return NodeSpec(
        name=name,
        role=Role.CONTROL_PLANE if control_plane else Role.WORKER,
        kubelet=_version_of(name, "status.nodeInfo.kubeletVersion", kubelet_version(node)),
        control_plane=control_plane_version(name, images.get(name, {})) if control_plane else None,
        os=(os_families or {}).get(name) or _windows(labels),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        machine_id=machine_id_of(node),
        left_cordoned_by=cordoned_by(node),
        left_cordon_epoch=cordon_epoch(node),
    )


def control_plane_version(node: str, components: dict[str, str]) -> KubeVersion | None:
    """The version a control plane runs: the oldest of its components' (None if it shows none).
    kubeadm replaces them one at a time, and rolls every one back when one does not come up;
    seen half-way (a `kubeadm upgrade node` still running, as one of a lost campaign's can be),
    a new kube-apiserver beside an old scheduler is not a control plane at the new version."""
    versions = [_version_of(node, f"its {component} mirror pod's image tag", components[component])
                for component in CONTROL_PLANE_COMPONENTS if component in components]
    return min(versions) if versions else None


def machine_id_of(node: dict[str, Any]) -> str | None:
    """The host's machine id as the node's kubelet reports it, None where it reports none."""
    reported = (node.get("status") or {}).get("nodeInfo", {}).get("machineID")
    return reported.strip() or None if isinstance(reported, str) else None


def _version_of(node: str, field: str, text: object) -> KubeVersion:
    """A version the cluster reports for `node`, refused naming the node and where it was read."""
    try:
        return parse_version(text if isinstance(text, str) else repr(text))
    except InvalidInput as error:
        raise InvalidInput(f"node {node}: {field}: {error}") from None


def _windows(labels: dict[str, str]) -> OsFamily | None:
    """A Windows node says so in its labels; a Linux node's package manager only its agent knows."""
    return OsFamily.WINDOWS if labels.get("kubernetes.io/os") == "windows" else None


def unready_nodes(api: KubeApi) -> list[str]:
    return read_nodes(api, _name_if_unready)


def _name_if_unready(node: dict[str, Any]) -> str | None:
    return None if is_ready(node) else node["metadata"]["name"]


def unhealthy(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods if not pod_ready(p)]


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))
