"""What the simulated kubeadm says, per minor, pinned to what real kubeadm of that minor printed:
the form changed with 1.32 (phases) and in small ways after. No I/O."""

import re

import pytest

from kubeupgrade.model.versions import parse_version
from kubeupgrade.sandbox.hostbin.kubeadm_dialect import Dialect, tabulate

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
