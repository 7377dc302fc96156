"""Which cluster an API server belongs to, so a campaign acts only on the cluster it names.

A cluster's name is the `kubeupgrade.io/cluster-name` annotation of its kube-system namespace
when an operator set one, else kubeadm's `clusterName` (ClusterConfiguration; kubeadm's
default is "kubernetes"). Names are chosen by people and can repeat, so the identity also
carries the kube-system namespace's UID: created once with the cluster and never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.discovery import cluster_configuration

NAME_ANNOTATION = "kubeupgrade.io/cluster-name"
KUBEADM_DEFAULT_NAME = "kubernetes"


@dataclass(frozen=True)
class ClusterIdentity:
    name: str
    uid: str
    source: str  # where the name came from, for messages

    def describe(self) -> str:
        return f"{self.name} (kube-system uid {self.uid}; name from {self.source})"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "uid": self.uid, "source": self.source}


def read_identity(api: KubeApi) -> ClusterIdentity:
    namespace = api.call("read namespace kube-system", api.core.read_namespace, "kube-system")
    metadata = namespace.get("metadata", {})
    uid = str(metadata.get("uid") or "")
    annotated = (metadata.get("annotations") or {}).get(NAME_ANNOTATION)
    if annotated:
        return ClusterIdentity(str(annotated), uid, f"the {NAME_ANNOTATION} annotation of kube-system")
    configmap = api.call("read kubeadm-config", api.core.read_namespaced_config_map,
                         "kubeadm-config", "kube-system")
    # Unreadable, it names no cluster: refused naming the ConfigMap, never taken for the default.
    config = cluster_configuration(configmap) or {}
    name = config.get("clusterName")
    if name:
        return ClusterIdentity(str(name), uid, "kubeadm's clusterName")
    return ClusterIdentity(KUBEADM_DEFAULT_NAME, uid, "kubeadm's default clusterName")


def mismatch(named: str, identity: ClusterIdentity) -> str | None:
    """Why a campaign for cluster `named` must not act here, or None when it may."""
    if named == identity.name:
        return None
    return (f"the campaign names cluster {named!r} but the controller's kubeconfig reaches cluster "
            f"{identity.describe()}; point the controller at {named!r}, or if this is that "
            f"cluster, name it: kubectl annotate namespace kube-system {NAME_ANNOTATION}={named}")
