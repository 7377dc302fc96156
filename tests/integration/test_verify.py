"""The hop's verification against the sandbox's API server, with the real client."""

from __future__ import annotations

import pytest

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.verify import verify_cluster
from kubeupgrade.model.versions import parse_version

pytestmark = pytest.mark.integration


def test_a_control_plane_component_put_back_after_the_plan_is_named_as_a_change_under_the_campaign(make_sandbox):
    """kubeadm rolls a control plane back when one of its static pods does not come up: every
    phase of the campaign succeeded, yet a component is at the old version. The verification
    names it, and says the versions are behind (which a retry of the verification cannot mend)."""
    box = make_sandbox(control_planes=2, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    version = parse_version("1.30.4")
    done = verify_cluster(api, version)
    assert done.problems == [] and not done.versions_behind
    assert {row.name for row in done.rows} == {"cp-1", "cp-2", "worker-1"}

    api.core.patch_namespaced_pod("kube-scheduler-cp-2", "kube-system", {"spec": {"containers": [
        {"name": "kube-scheduler", "image": "registry.k8s.io/kube-scheduler:v1.30.2"}]}})
    behind = verify_cluster(api, version)
    assert behind.problems == ["node cp-2 static pods not at v1.30.4: kube-scheduler"]
    assert behind.versions_behind and behind.static_pods_behind == ("cp-2",)
    assert done.static_pods_behind == ()


def test_a_control_planes_components_behind_are_named_from_its_own_mirror_pods(make_sandbox):
    """What the readiness wait of a control plane holds for: each of kubeadm's three components
    on that node at the version and Ready, read from the node's mirror pods alone (another
    node's, and etcd, never count)."""
    from kubeupgrade.kube.discovery import components_behind

    box = make_sandbox(control_planes=2, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    version = parse_version("1.30.4")
    assert components_behind(api, "cp-1", version) == []
    assert components_behind(api, "cp-1", parse_version("1.31.2")) == [
        "kube-apiserver at v1.30.4", "kube-controller-manager at v1.30.4", "kube-scheduler at v1.30.4"]

    api.core.patch_namespaced_pod("kube-scheduler-cp-2", "kube-system", {"spec": {"containers": [
        {"name": "kube-scheduler", "image": "registry.k8s.io/kube-scheduler:v1.30.2"}]}})
    api.core.patch_namespaced_pod("etcd-cp-1", "kube-system", {"spec": {"containers": [
        {"name": "etcd", "image": "registry.k8s.io/etcd:3.5.0-0"}]}})
    assert components_behind(api, "cp-2", version) == ["kube-scheduler at v1.30.2"]
    assert components_behind(api, "cp-1", version) == []
    assert components_behind(api, "worker-1", version) == [
        f"{c} has no mirror pod" for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]

    api.core.patch_namespaced_pod_status("kube-controller-manager-cp-1", "kube-system", {"status": {
        "conditions": [{"type": "Ready", "status": "False"}]}})
    assert components_behind(api, "cp-1", version) == ["kube-controller-manager not Ready"]


def test_verification_judges_kubeadms_components_only_and_reads_a_tag_beside_a_digest(make_sandbox):
    """An operator's own static pod labelled tier=control-plane (a kube-vip, say) is not kubeadm's
    to move: it never makes a hop 'behind'. A component whose image carries a digest after its
    tag (an admission policy that pins digests writes it so) is read by its tag."""
    from kubeupgrade.kube.discovery import components_behind

    box = make_sandbox(control_planes=2, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    version = parse_version("1.30.4")
    api.core.create_namespaced_pod("kube-system", {
        "metadata": {"name": "kube-vip-cp-1", "namespace": "kube-system",
                     "labels": {"tier": "control-plane", "component": "kube-vip"}},
        "spec": {"nodeName": "cp-1", "containers": [
            {"name": "kube-vip", "image": "ghcr.io/kube-vip/kube-vip:v0.8.9"}]}})
    digest = "sha256:" + "ab" * 32
    api.core.patch_namespaced_pod("kube-apiserver-cp-2", "kube-system", {"spec": {"containers": [
        {"name": "kube-apiserver", "image": f"registry.example:5000/kube-apiserver:v1.30.4@{digest}"}]}})
    done = verify_cluster(api, version)
    assert done.problems == [] and not done.versions_behind
    assert {row.name: row.control_plane for row in done.rows}["cp-2"] == "v1.30.4"
    assert components_behind(api, "cp-2", version) == []
    assert components_behind(api, "cp-2", parse_version("1.31.2"))[0] == "kube-apiserver at v1.30.4"


def test_what_a_control_plane_still_lacks_includes_its_own_kubelet(make_sandbox):
    """The cluster's word before any worker changes: the node's kubelet at the version and
    Ready, then its components (a worker has no components to show)."""
    from kubeupgrade.kube.discovery import control_plane_behind

    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    assert control_plane_behind(api, "cp-1", parse_version("1.30.4")) == []
    assert control_plane_behind(api, "cp-1", parse_version("1.31.2")) == [
        "kubelet at v1.30.4", "kube-apiserver at v1.30.4", "kube-controller-manager at v1.30.4",
        "kube-scheduler at v1.30.4"]
    api.core.patch_node_status("cp-1", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert control_plane_behind(api, "cp-1", parse_version("1.30.4")) == ["not Ready"]
