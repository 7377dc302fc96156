"""Builders for the sandbox cluster's API objects, shaped like a kubeadm cluster's.

`initial_objects` creates the state a fresh sandbox starts from: nodes, kube-system (mirror pods,
CoreDNS, kube-proxy, `kubeadm-config`, `kubelet-config`) and a default workload of Deployments
with PodDisruptionBudgets and a DaemonSet, so drains meet real constraints. Pure apart from the
random names, which come from a seeded generator.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

import yaml

from kubeupgrade.model.versions import KubeVersion, parse_version
from kubeupgrade.sandbox import releases
from kubeupgrade.sandbox.layout import KUBELET_STATE, STATIC_COMPONENTS  # noqa: F401 - re-exported
from kubeupgrade.sandbox.store import now_rfc3339

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}
OS_IMAGES = {"apt": "Ubuntu 22.04.5 LTS", "dnf": "Rocky Linux 9.5 (Blue Onyx)",
             "dnf5": "Fedora Linux 42 (Server Edition)",  # a dnf host whose package manager is dnf 5
             "yum": "CentOS Linux 7 (Core)", "windows": "Windows Server 2022 Datacenter"}
KERNELS = {"windows": "10.0.20348.2762"}  # what a Windows node reports (its build number)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for item in obj.get("status", {}).get("conditions", []):
        if item.get("type") == kind:
            return item.get("status")
    return None


def component_image(component: str, version: str) -> str:
    if component == "etcd":
        return f"registry.k8s.io/etcd:{releases.etcd_version(parse_version(version).minor_version)}"
    return f"registry.k8s.io/{component}:{version}"


def coredns_image(version: KubeVersion) -> str:
    return f"registry.k8s.io/coredns/coredns:{releases.coredns_version(version.minor_version)}"


def set_pod_ready(pod: dict[str, Any], ready: bool) -> None:
    stamp = now_rfc3339()
    status = pod.setdefault("status", {})
    status["phase"] = "Running" if ready else status.get("phase", "Pending")
    if ready:
        status.setdefault("startTime", stamp)
    flag = "True" if ready else "False"
    status["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
        {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
    ]
    containers = pod["spec"]["containers"]
    previous = {c.get("name"): c for c in status.get("containerStatuses", [])}
    status["containerStatuses"] = [
        {"name": c["name"], "image": c["image"], "ready": ready, "started": ready,
         "imageID": f"{c['image'].split(':')[0]}@sha256:{uuid.uuid5(uuid.NAMESPACE_URL, c['image']).hex * 2}",
         "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}" if ready else "",
         "restartCount": previous.get(c["name"], {}).get("restartCount", 0),
         "state": {"running": {"startedAt": stamp}} if ready else {"waiting": {"reason": "ContainerCreating"}}}
        for c in containers
    ]


def tolerates(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    tolerations = pod["spec"].get("tolerations") or []
    for taint in node["spec"].get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(t.get("operator") == "Exists" and not t.get("key") or t.get("key") == taint["key"]
                   for t in tolerations):
            return False
    return True


def bind_pod(pod: dict[str, Any], node: dict[str, Any]) -> None:
    pod["spec"]["nodeName"] = node["metadata"]["name"]
    host_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    status = pod.setdefault("status", {})
    status.update(phase="Pending", hostIP=host_ip, podIP=_pod_ip(node, pod["metadata"]["name"]))
    status["conditions"] = [{"type": "PodScheduled", "status": "True",
                             "lastTransitionTime": now_rfc3339()}]


def _pod_ip(node: dict[str, Any], name: str) -> str:
    cidr = node["spec"].get("podCIDR", "10.244.0.0/24")
    base = cidr.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.{2 + (hash(name) % 250)}"


def pod_from_template(owner: dict[str, Any], rng: random.Random, name: str | None = None) -> dict[str, Any]:
    """A pod of `owner`'s template: named with a random suffix, or `name` (a StatefulSet's)."""
    suffix = "".join(rng.choice(_NAME_CHARS) for _ in range(5))
    template = owner["spec"]["template"]
    return {
        "metadata": {
            "name": name or f"{owner['metadata']['name']}-{suffix}",
            "namespace": owner["metadata"]["namespace"],
            "labels": dict(template["metadata"].get("labels", {})),
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                 "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": yaml.safe_load(yaml.safe_dump(template["spec"])),
        "status": {"phase": "Pending"},
    }


def mirror_pod(node: dict[str, Any], component: str, image: str) -> dict[str, Any]:
    name = node["metadata"]["name"]
    config_hash = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{component}/{image}").hex
    pod = {
        "metadata": {
            "name": f"{component}-{name}", "namespace": "kube-system",
            "labels": {"component": component, "tier": "control-plane"},
            "annotations": {MIRROR_ANNOTATION: config_hash, "kubernetes.io/config.hash": config_hash,
                            "kubernetes.io/config.source": "file"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                 "uid": node["metadata"]["uid"], "controller": True}],
        },
        "spec": {"containers": [{"name": component, "image": image}], "hostNetwork": True,
                 "priorityClassName": "system-node-critical",
                 "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]},
        "status": {},
    }
    bind_pod(pod, node)
    set_pod_ready(pod, True)
    return pod


def machine_id(node: str) -> str:
    """The node's /etc/machine-id, as its kubelet reports it in status.nodeInfo.machineID: 32
    hex digits, the same for the node in every sandbox (hosts.create_host writes the file)."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, node).hex


def node_object(spec: dict[str, Any], index: int, version: str) -> dict[str, Any]:
    name, control_plane = spec["name"], spec["role"] == "control-plane"
    system = "windows" if spec["os"] == "windows" else "linux"
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": system,
              "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": system,
              "beta.kubernetes.io/arch": "amd64"}
    if system == "windows":  # what a Windows node's kubelet adds
        labels["node.kubernetes.io/windows-build"] = "10.0.20348"
    if control_plane:
        labels[CONTROL_PLANE_LABEL] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    labels.update(spec.get("labels", {}))
    stamp = now_rfc3339()
    conditions = [
        {"type": kind, "status": "False", "reason": f"KubeletHas{reason}",
         "message": message, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                       "lastTransitionTime": stamp})
    octet3, octet4 = divmod(index, 250)
    node: dict[str, Any] = {
        "metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": labels,
                     "annotations": {"kubeadm.alpha.kubernetes.io/cri-socket":
                                     "unix:///var/run/containerd/containerd.sock",
                                     "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": f"10.{244 + octet3 // 250}.{index % 250}.0/24",
                 "podCIDRs": [f"10.{244 + octet3 // 250}.{index % 250}.0/24"]},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": f"10.0.{octet3}.{octet4 + 2}"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version,
                         "osImage": OS_IMAGES[spec.get("package_manager") or spec["os"]],
                         "kernelVersion": KERNELS.get(spec["os"], "5.15.0-119-generic"),
                         "containerRuntimeVersion": "containerd://1.7.22",
                         "operatingSystem": system, "architecture": "amd64",
                         "machineID": machine_id(name),
                         "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                         "bootID": str(uuid.uuid4())},
            "capacity": {"cpu": "4", "memory": "16363916Ki", "pods": "110",
                         "ephemeral-storage": "102626232Ki"},
            "allocatable": {"cpu": "4", "memory": "16261516Ki", "pods": "110",
                            "ephemeral-storage": "94580335255"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }
    if control_plane:
        node["spec"]["taints"] = [dict(CONTROL_PLANE_TAINT)]
    return node


def cluster_configuration(version: str, name: str = "kubernetes") -> str:
    minor = parse_version(version).minor
    document = {
        "apiVersion": "kubeadm.k8s.io/v1beta4" if minor >= 31 else "kubeadm.k8s.io/v1beta3",
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version,
        "clusterName": name,
        "controlPlaneEndpoint": "control-plane.sandbox.internal:6443",
        "certificatesDir": "/etc/kubernetes/pki",
        "imageRepository": "registry.k8s.io",
        "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
        "networking": {"dnsDomain": "cluster.local", "podSubnet": "10.244.0.0/16",
                       "serviceSubnet": "10.96.0.0/12"},
        "apiServer": {}, "controllerManager": {}, "scheduler": {}, "dns": {}, "proxy": {},
    }
    return yaml.safe_dump(document, sort_keys=True)


def kubelet_configuration(version: str, current: str | None = None) -> str:
    """The cluster's KubeletConfiguration as kubeadm `version` writes it: what an operator set
    in the `current` one (failSwapOn, say) is kept, as kubeadm keeps it on upgrade."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd", "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
        "staticPodPath": "/etc/kubernetes/manifests", "rotateCertificates": True,
    }
    kept = yaml.safe_load(current) if current else None
    if isinstance(kept, dict):
        config.update(kept)
    # Not a real field: marks which kubeadm version wrote this file, so tests can see
    # `kubeadm upgrade node` rewrote it.
    config["sandboxWrittenFor"] = version
    return yaml.safe_dump(config, sort_keys=True)


def selects(owner: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether the node selector of a DaemonSet's template (or of a pod) lets it run on `node`."""
    spec = owner["spec"]["template"]["spec"] if "template" in owner["spec"] else owner["spec"]
    selector = spec.get("nodeSelector") or {}
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _workload(kind: str, namespace: str, name: str, image: str, replicas: int | None,
              labels: dict[str, str], **pod_spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                     "labels": dict(labels), "generation": 1,
                     "creationTimestamp": now_rfc3339()},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": name, "image": image}],
                                       "terminationGracePeriodSeconds": 30, **pod_spec}}},
    }
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    return obj


def replica_set_for(deployment: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    template_hash = "".join(rng.choice(_NAME_CHARS) for _ in range(10))
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{deployment['metadata']['name']}-{template_hash}",
                     "namespace": deployment["metadata"]["namespace"], "uid": str(uuid.uuid4()),
                     "labels": dict(deployment["spec"]["template"]["metadata"].get("labels") or {}),
                     "generation": 1,
                     "creationTimestamp": now_rfc3339(),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": deployment["metadata"]["name"],
                                          "uid": deployment["metadata"]["uid"],
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": deployment["spec"].get("replicas", 1),
                 "selector": deployment["spec"]["selector"],
                 "template": yaml.safe_load(yaml.safe_dump(deployment["spec"]["template"]))},
    }
    return rs


def initial_objects(config: dict[str, Any], extra: dict[str, list[dict[str, Any]]] | None = None
                    ) -> dict[str, list[dict[str, Any]]]:
    """Every object of a fresh sandbox cluster, by resource plural; `extra` (a rehearsal's
    mirror of a live cluster's workloads) joins them, its pods running on the nodes they name."""
    rng = random.Random(config.get("seed", 0))
    version = config["version"]
    kube_version = parse_version(version)
    stamp = now_rfc3339(time.time())
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in (
        "namespaces", "nodes", "pods", "configmaps", "deployments", "daemonsets", "replicasets",
        "statefulsets", "poddisruptionbudgets")}

    def meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
        data = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": stamp,
                "resourceVersion": "1", "generation": 1, **extra}
        if namespace:
            data["namespace"] = namespace
        return data

    for namespace in ("default", "kube-system", "kube-public", "kube-node-lease", "shop", "monitoring"):
        out["namespaces"].append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(namespace),
                                  "spec": {"finalizers": ["kubernetes"]},
                                  "status": {"phase": "Active"}})
    nodes = []
    for index, spec in enumerate(config["nodes"]):
        node = node_object(spec, index, spec.get("kubelet") or version)
        node.update(apiVersion="v1", kind="Node")
        node["metadata"].update(creationTimestamp=stamp, resourceVersion="1")
        nodes.append(node)
        if spec["role"] == "control-plane":
            for component in STATIC_COMPONENTS:
                pod = mirror_pod(node, component, component_image(component, spec.get("control_plane") or version))
                pod.update(apiVersion="v1", kind="Pod")
                pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=stamp,
                                       resourceVersion="1")
                out["pods"].append(pod)
    out["nodes"] = nodes
    out["configmaps"] += [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kubeadm-config", "kube-system"),
         "data": {"ClusterConfiguration": cluster_configuration(version, config.get("cluster", "sandbox"))}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kubelet-config", "kube-system"),
         "data": {"kubelet": kubelet_configuration(version)}},
    ]
    workers = [n for n in nodes if CONTROL_PLANE_LABEL not in n["metadata"]["labels"]]
    everywhere = [{"operator": "Exists"}]
    coredns = _workload("Deployment", "kube-system", "coredns", coredns_image(kube_version), 2,
                        {"k8s-app": "kube-dns"}, priorityClassName="system-cluster-critical",
                        tolerations=[{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}])
    web = _workload("Deployment", "shop", "web", "registry.example/shop/web:2.4.1",
                    max(2, len(workers)), {"app": "web"},
                    volumes=[{"name": "cache", "emptyDir": {}}])
    api = _workload("Deployment", "shop", "api", "registry.example/shop/api:1.9.0", 3, {"app": "api"})
    proxy = _workload("DaemonSet", "kube-system", "kube-proxy", f"registry.k8s.io/kube-proxy:{version}",
                      None, {"k8s-app": "kube-proxy"}, tolerations=everywhere, hostNetwork=True,
                      nodeSelector={"kubernetes.io/os": "linux"})  # as kubeadm deploys it
    daemonsets = [proxy]
    if any(n["metadata"]["labels"].get("kubernetes.io/os") == "windows" for n in nodes):
        # What the Windows procedure applies from sig-windows-tools (a HostProcess DaemonSet).
        daemonsets.append(_workload(
            "DaemonSet", "kube-system", "kube-proxy-windows",
            f"sigwindowstools/kube-proxy:{version}-calico-hostprocess", None,
            {"k8s-app": "kube-proxy-windows"}, tolerations=everywhere, hostNetwork=True,
            nodeSelector={"kubernetes.io/os": "windows"}, serviceAccountName="kube-proxy",
            securityContext={"windowsOptions": {"hostProcess": True,
                                                "runAsUserName": "NT AUTHORITY\\system"}}))
    exporter = _workload("DaemonSet", "monitoring", "node-exporter",
                         "quay.io/prometheus/node-exporter:v1.8.2", None, {"app": "node-exporter"},
                         tolerations=everywhere)
    # The default workload, unless a rehearsal mirrors a cluster's own.
    workload = config.get("workload", True)
    deployments = [coredns, web, api] if workload else [coredns]
    out["deployments"] += deployments
    if workload:
        daemonsets.append(exporter)
    out["daemonsets"] += daemonsets
    load: dict[str, int] = {}
    for deployment in deployments:
        rs = replica_set_for(deployment, rng)
        out["replicasets"].append(rs)
        ready = 0
        for _ in range(deployment["spec"]["replicas"]):
            pod = pod_from_template(rs, rng)
            pod.update(apiVersion="v1", kind="Pod")
            pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=stamp, resourceVersion="1")
            candidates = [n for n in nodes if tolerates(pod, n)]
            if candidates:
                target = min(candidates, key=lambda n: (load.get(n["metadata"]["name"], 0),
                                                         n["metadata"]["name"]))
                load[target["metadata"]["name"]] = load.get(target["metadata"]["name"], 0) + 1
                bind_pod(pod, target)
                set_pod_ready(pod, True)
                ready += 1
            out["pods"].append(pod)
        # A running cluster's controllers have reported already: a reader of the status (the
        # verification, `kubectl get deploy`) sees it from the first request, not after the
        # sandbox's controller has made its first pass.
        replicas = deployment["spec"]["replicas"]
        rs["status"] = {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": ready,
                        "availableReplicas": ready, "observedGeneration": 1}
        deployment["status"] = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                                "readyReplicas": ready, "availableReplicas": ready}
    for ds in daemonsets:
        selected = [n for n in nodes if selects(ds, n)]
        for node in selected:
            pod = pod_from_template(ds, rng)
            pod.update(apiVersion="v1", kind="Pod")
            pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=stamp, resourceVersion="1")
            bind_pod(pod, node)
            set_pod_ready(pod, True)
            out["pods"].append(pod)
        count = len(selected)
        ds["status"] = {"desiredNumberScheduled": count, "currentNumberScheduled": count, "numberReady": count,
                        "updatedNumberScheduled": count, "numberAvailable": count, "numberMisscheduled": 0,
                        "observedGeneration": 1}
    for name, spec in (("web", {"maxUnavailable": 1}), ("api", {"minAvailable": 2})) if workload else ():
        out["poddisruptionbudgets"].append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": meta(f"{name}-pdb", "shop"),
            "spec": {**spec, "selector": {"matchLabels": {"app": name}}}})
    if extra:
        _join(out, extra, stamp)
    return out


def _join(out: dict[str, list[dict[str, Any]]], extra: dict[str, list[dict[str, Any]]], stamp: str) -> None:
    """Add `extra` to a fresh cluster's objects: a namespace it has already is kept, a pod on a
    node of the cluster runs there (Ready), any other pod waits for the scheduler."""
    nodes = {n["metadata"]["name"]: n for n in out["nodes"]}
    namespaces = {n["metadata"]["name"] for n in out["namespaces"]}
    for plural, items in extra.items():
        for item in items:
            obj = json.loads(json.dumps(item))
            meta = obj["metadata"]
            if plural == "namespaces":
                if meta["name"] in namespaces:
                    continue
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
                obj["status"] = {"phase": "Active"}
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.update(creationTimestamp=stamp, resourceVersion="1")
            meta.setdefault("generation", 1)
            if plural == "pods":
                node = nodes.get(obj["spec"].get("nodeName") or "")
                obj["spec"].pop("nodeName", None)
                obj["status"] = {"phase": "Pending"}
                if node is not None:
                    bind_pod(obj, node)
                    set_pod_ready(obj, True)
            out.setdefault(plural, []).append(obj)
