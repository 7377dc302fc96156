"""What discovery reads from the cluster (the version kubeadm recorded in kube-system/kubeadm-
config, each node's kubelet and API server versions): read from whatever the API server
returns, and what cannot be read refused in one line that names the object and the field."""

import pytest

from kubeupgrade.errors import PermanentError
from kubeupgrade.kube.discovery import configured_version


def configmap(text):
    return {"metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": text}}


def test_the_version_kubeadm_wrote_is_read():
    text = ("apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nclusterName: kubernetes\n"
            "kind: ClusterConfiguration\nkubernetesVersion: v1.30.4\n")
    assert configured_version(configmap(text)).tag == "v1.30.4"


DAMAGED = {
    "no data": {"metadata": {}},
    "data not a mapping": {"data": ["ClusterConfiguration"]},
    "no ClusterConfiguration": {"data": {"ClusterStatus": "x"}},
    "not YAML": configmap("kubernetesVersion: [v1.30.4\n"),
    "nested too deep": configmap("a: " + "[" * 20000 + "]" * 20000 + "\n"),
    "a list": configmap("- kubernetesVersion: v1.30.4\n"),
    "no kubernetesVersion": configmap("kind: ClusterConfiguration\n"),
    "version not a string": configmap("kubernetesVersion: 1.3\n"),
    "not a version": configmap("kubernetesVersion: latest\n"),
    "a minor only": configmap("kubernetesVersion: v1.30\n"),
    "empty": configmap(""),
    "not a mapping at all": "kubeadm-config",
}


@pytest.mark.parametrize("damaged", DAMAGED.values(), ids=DAMAGED)
def test_a_damaged_kubeadm_config_is_named_in_one_line(damaged):
    with pytest.raises(PermanentError) as raised:
        configured_version(damaged)
    message = str(raised.value)
    assert message.startswith("kube-system/kubeadm-config: data.ClusterConfiguration")
    assert "\n" not in message


@pytest.mark.parametrize("reported", ["v1.30.4+vmware.1", "", "1.30", None, 1.3])
def test_a_node_reporting_a_kubelet_version_that_is_not_one_is_named(reported):
    from kubeupgrade.errors import InvalidInput
    from kubeupgrade.kube.discovery import node_spec

    node = {"metadata": {"name": "worker-7", "labels": {}}, "status": {"nodeInfo": {"kubeletVersion": reported}}}
    with pytest.raises(InvalidInput, match=r"^node worker-7: status.nodeInfo.kubeletVersion: "):
        node_spec(node, {})


def test_a_control_plane_whose_apiserver_image_tag_is_not_a_version_is_named():
    from kubeupgrade.errors import InvalidInput
    from kubeupgrade.kube.discovery import node_spec

    node = {"metadata": {"name": "cp-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"nodeInfo": {"kubeletVersion": "v1.30.4"}}}
    assert node_spec(node, {"cp-1": {"kube-apiserver": "v1.30.4"}}).control_plane.tag == "v1.30.4"
    with pytest.raises(InvalidInput, match=r"^node cp-1: its kube-apiserver mirror pod's image tag: 'latest'"):
        node_spec(node, {"cp-1": {"kube-apiserver": "latest"}})


def test_a_control_plane_half_way_through_kubeadm_is_at_its_oldest_components_version():
    """kubeadm replaces kube-apiserver first: seen then, the node is not yet at the new version
    (a campaign that took it so planned no `kubeadm upgrade node` there, and kubeadm rolled the
    node back under it)."""
    from kubeupgrade.errors import InvalidInput
    from kubeupgrade.kube.discovery import node_spec

    node = {"metadata": {"name": "cp-2", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"nodeInfo": {"kubeletVersion": "v1.30.2"}}}
    half_way = {"kube-apiserver": "v1.30.5", "kube-controller-manager": "v1.30.2",
                "kube-scheduler": "v1.30.2", "etcd": "3.5.12-0"}
    assert node_spec(node, {"cp-2": half_way}).control_plane.tag == "v1.30.2"
    done = {**half_way, "kube-controller-manager": "v1.30.5", "kube-scheduler": "v1.30.5"}
    assert node_spec(node, {"cp-2": done}).control_plane.tag == "v1.30.5"
    with pytest.raises(InvalidInput, match=r"^node cp-2: its kube-scheduler mirror pod's image tag: 'latest'"):
        node_spec(node, {"cp-2": {**done, "kube-scheduler": "latest"}})


@pytest.mark.parametrize(("reported", "kept"), [("9762d1444d0150608f112d7dba4a761f", "9762d1444d0150608f112d7dba4a761f"),
                                                (" 9762d1444d0150608f112d7dba4a761f\n", "9762d1444d0150608f112d7dba4a761f"),
                                                ("", None), (None, None), (42, None)])
def test_the_machine_id_the_kubelet_reports_is_kept_for_the_agents_to_check(reported, kept):
    from kubeupgrade.kube.discovery import node_spec
    from kubeupgrade.model.campaign import Campaign, NodeSpec, Role
    from kubeupgrade.model.versions import parse_version, parse_version_spec
    from kubeupgrade.planning.live import with_live_state

    info = {"kubeletVersion": "v1.30.4"} if reported is None else {"kubeletVersion": "v1.30.4", "machineID": reported}
    live = node_spec({"metadata": {"name": "worker-7", "labels": {}}, "status": {"nodeInfo": info}}, {})
    assert live.machine_id == kept
    # A campaign that lists its nodes gets it from the cluster, as it gets the versions.
    listed = Campaign("prod", parse_version_spec("1.31"), nodes=(NodeSpec("worker-7", Role.WORKER),))
    merged = with_live_state(listed, [live], parse_version("1.30.4"))
    assert merged.nodes[0].machine_id == kept
