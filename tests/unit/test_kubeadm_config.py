"""The cluster's version as kubeadm recorded it (kube-system/kubeadm-config): read from any
ConfigMap the API server may return, a damaged one refused in one line that names it."""

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
