"""What the simulated kubeadm says, per minor, pinned to what real kubeadm of that minor printed:
the form changed with 1.32 (phases) and in small ways after. No I/O."""

import re

import pytest

from kubeupgrade.model.versions import parse_version
from kubeupgrade.sandbox.hostbin.kubeadm_dialect import Dialect, dialect_of, tabulate

CLASSIC, PHASED = range(28, 32), range(32, 35)


@pytest.mark.parametrize("minor", [*CLASSIC, *PHASED])
def test_each_minor_ends_apply_and_node_in_its_own_words(minor):
    dialect, target = Dialect(minor), parse_version(f"1.{minor}.3")
    success = dialect.apply_succeeded(target)
    if minor in CLASSIC:
        assert success[1] == f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "v1.{minor}.3". Enjoy!'
        assert dialect.node_succeeded()[0] == "[upgrade] The configuration for this node was successfully updated!"
        assert dialect.reading_config("node")[0] == "[upgrade] Reading configuration from the cluster..."
        assert dialect.kubelet_config("/tmp/x")[1] == ""  # no klog warning before 1.32
    else:
        assert success[1] == f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "v1.{minor}.3".'
        assert dialect.node_succeeded() == []
        assert dialect.reading_config("apply")[0].startswith('[upgrade] Reading configuration from the "kubeadm-config" ConfigMap')
        assert re.search(rf"postupgrade\.go:{116 if minor >= 34 else 117}\] Using temporary directory",
                         dialect.kubelet_config("/tmp/x")[1])


def test_the_upload_config_hint_changed_twice_after_1_32():
    hints = {minor: Dialect(minor).reading_config("node")[1] for minor in PHASED}
    assert hints[32].endswith("'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.")
    assert hints[33].endswith("'kubeadm init phase upload-config --config your-config-file' to re-upload it.")
    assert hints[34].endswith("'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.")


@pytest.mark.parametrize("minor", [*CLASSIC, *PHASED])
def test_version_info_has_the_real_shape(minor):
    info = Dialect(minor).version_info(parse_version(f"1.{minor}.2"))
    assert re.fullmatch(r"[0-9a-f]{40}", info["gitCommit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["buildDate"])
    assert ("emulationMajor" in info) is (minor >= 33)
    assert list(info)[-3:] == ["goVersion", "compiler", "platform"]


def test_tables_are_laid_out_as_gos_tabwriter_does():
    assert tabulate([["COMPONENT", "NODE", "CURRENT", "TARGET"], ["kubelet", "worker-10", "v1.31.5", "v1.32.1"]]) == [
        "COMPONENT   NODE        CURRENT   TARGET", "kubelet     worker-10   v1.31.5   v1.32.1"]


def test_plan_before_1_30_counts_kubelets_per_version_and_shows_one_row_per_component():
    """Pinned to what kubeadm 1.29.0 printed for a two-node cluster at v1.28.0."""
    dialect = Dialect(29)
    assert not dialect.plan_per_node
    kubelets = tabulate(dialect.plan_kubelets([("cp", "v1.28.0"), ("node01", "v1.28.0")], "v1.29.0"))
    assert kubelets == ["COMPONENT   CURRENT       TARGET", "kubelet     2 x v1.28.0   v1.29.0"]
    static = [(c, n, "v1.28.0") for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
              for n in ("cp", "cp-2")]
    table = tabulate(dialect.plan_components(static, "v1.28.0", ("v1.10.1", "v1.11.1"),
                                             [("cp", "3.5.9-0", "3.5.10-0"), ("cp-2", "3.5.9-0", "3.5.10-0")],
                                             "v1.29.0"))
    assert table == ["COMPONENT                 CURRENT   TARGET",
                     "kube-apiserver            v1.28.0   v1.29.0",
                     "kube-controller-manager   v1.28.0   v1.29.0",
                     "kube-scheduler            v1.28.0   v1.29.0",
                     "kube-proxy                v1.28.0   v1.29.0",
                     "CoreDNS                   v1.10.1   v1.11.1",
                     "etcd                      3.5.9-0   3.5.10-0"]
    # Kubelets at several versions: the component is named once, versions in string order.
    mixed = tabulate(Dialect(26).plan_kubelets([("a", "v1.27.2"), ("b", "v1.26.4")], "v1.26.5"))
    assert mixed[1:] == ["kubelet     1 x v1.26.4   v1.26.5", "            1 x v1.27.2   v1.26.5"]


def test_plan_from_1_30_has_a_row_per_node():
    """Pinned to what kubeadm 1.30.0 printed (kube-proxy's version as the ClusterConfiguration has it)."""
    dialect = Dialect(30)
    assert tabulate(dialect.plan_kubelets([("controlplane", "v1.29.0"), ("node01", "v1.29.0")], "v1.29.7")) == [
        "COMPONENT   NODE           CURRENT   TARGET",
        "kubelet     controlplane   v1.29.0   v1.29.7",
        "kubelet     node01         v1.29.0   v1.29.7"]
    static = [(c, "controlplane", "v1.29.0") for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    assert tabulate(dialect.plan_components(static, "1.29.0", ("v1.10.1", "v1.11.1"),
                                            [("controlplane", "3.5.10-0", "3.5.12-0")], "v1.29.7")) == [
        "COMPONENT                 NODE           CURRENT    TARGET",
        "kube-apiserver            controlplane   v1.29.0    v1.29.7",
        "kube-controller-manager   controlplane   v1.29.0    v1.29.7",
        "kube-scheduler            controlplane   v1.29.0    v1.29.7",
        "kube-proxy                               1.29.0     v1.29.7",
        "CoreDNS                                  v1.10.1    v1.11.1",
        "etcd                      controlplane   3.5.10-0   3.5.12-0"]


def test_addons_wait_for_the_last_control_plane_in_each_minors_words():
    assert Dialect(31).addons_waiting_for(["cp-2", "cp-3"]) == [
        "[upgrade/addons] skip upgrade addons because control plane instances [cp-2 cp-3] have not been upgraded"]
    assert Dialect(33).addons_waiting_for(["cp-2"]) == [  # once per addon phase
        "[upgrade/addon] Skipping upgrade of addons because control plane instances [cp-2] have not been upgraded"] * 2


def test_a_static_pod_timeout_is_told_in_each_minors_words():
    lines, error = dialect_of(parse_version("v1.28.15")).static_pod_timed_out("etcd", "cp-1", "apply")
    faced = ("couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier "
             "state. Errors faced: static Pod hash for component etcd on Node cp-1 did not change after 5m0s: ")
    assert error == "[upgrade/apply] FATAL: " + faced + "timed out waiting for the condition"
    assert lines == ["[upgrade/etcd] Failed to upgrade etcd: " + faced + "timed out waiting for the condition",
                     "[upgrade/etcd] Waiting for previous etcd to become available",
                     "[upgrade/etcd] Etcd was rolled back and is now available"]
    lines, error = dialect_of(parse_version("v1.33.1")).static_pod_timed_out("kube-apiserver", "cp-2", "node")
    assert lines == [] and error == ("error execution phase control-plane: couldn't complete the static pod "
                                     "upgrade: " + faced.replace("etcd on Node cp-1", "kube-apiserver on Node cp-2")
                                     + "context deadline exceeded")
    # kubeadm's last look failed: its error is the one given
    _, error = dialect_of(parse_version("v1.31.2")).static_pod_timed_out(
        "kube-apiserver", "cp-1", "apply", 'Get "https://10.0.0.1:6443/api/v1/...": connection refused')
    assert error.endswith("Errors faced: failed to obtain static Pod hash for component kube-apiserver "
                          'on Node cp-1: Get "https://10.0.0.1:6443/api/v1/...": connection refused')
