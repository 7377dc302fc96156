"""Argv builders and the repository file: table-driven, no I/O."""

import pytest

from kubeupgrade.host import commands, repository
from kubeupgrade.host.executor import Command
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import MinorVersion, parse_package_version, parse_version

APT, DNF, YUM = OsFamily.APT, OsFamily.DNF, OsFamily.YUM


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (commands.refresh_metadata(APT), ("apt-get", "update", "-q")),
        (commands.refresh_metadata(DNF), ("dnf", "makecache", "--disableexcludes=kubernetes")),
        (commands.list_versions(APT), ("apt-cache", "madison", "kubeadm")),
        (commands.list_versions(YUM, "kubelet"), ("yum", "list", "--showduplicates", "kubelet", "--disableexcludes=kubernetes")),
        (commands.installed_version(APT, "kubelet"), ("dpkg-query", "-W", "--showformat=${Version}", "kubelet")),
        (commands.installed_version(DNF, "kubelet"), ("rpm", "-q", "kubelet")),
        (commands.hold(APT, "kubelet", "kubectl"), ("apt-mark", "hold", "kubelet", "kubectl")),
        (commands.unhold(APT, "kubeadm"), ("apt-mark", "unhold", "kubeadm")),
        (commands.install(APT, {"kubeadm": parse_package_version("1.31.2-1.1")}),
         ("apt-get", "install", "-y", "-q", "kubeadm=1.31.2-1.1")),
        (commands.install(APT, {"kubelet": parse_package_version("1.31.2-1.1"), "kubectl": parse_package_version("1.31.2-1.1")}, download_only=True),
         ("apt-get", "install", "-y", "-q", "--download-only", "kubectl=1.31.2-1.1", "kubelet=1.31.2-1.1")),
        (commands.install(DNF, {"kubeadm": parse_package_version("1.31.2-150500.1.1")}),
         ("dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", "--disableexcludes=kubernetes")),
        (commands.kubeadm_upgrade_apply(parse_version("1.31.2"), certificate_renewal=True, etcd_upgrade=False),
         ("kubeadm", "upgrade", "apply", "v1.31.2", "--yes", "--certificate-renewal=true", "--etcd-upgrade=false")),
        (commands.kubeadm_upgrade_apply(parse_version("1.31.2"), certificate_renewal=False, etcd_upgrade=True, config_file="/etc/k/u.yaml"),
         ("kubeadm", "upgrade", "apply", "--config", "/etc/k/u.yaml", "--yes", "--certificate-renewal=false", "--etcd-upgrade=true")),
        (commands.kubeadm_upgrade_node(certificate_renewal=True, etcd_upgrade=True),
         ("kubeadm", "upgrade", "node", "--certificate-renewal=true", "--etcd-upgrade=true")),
        (commands.systemctl("restart"), ("systemctl", "restart", "kubelet")),
        (commands.systemctl("daemon-reload", None), ("systemctl", "daemon-reload")),
        (commands.stop_kube_apiserver(), ("killall", "-s", "SIGTERM", "kube-apiserver")),
    ],
)
def test_argv(command, argv):
    assert command.argv == argv
    assert command.timeout > 0


def test_yum_and_dnf_have_no_holds():
    assert commands.hold(DNF, "kubeadm") is None and commands.unhold(YUM, "kubeadm") is None


@pytest.mark.parametrize("bad", [("kubeadm; rm -rf /",), ("docker",), ()])
def test_only_kubernetes_packages(bad):
    with pytest.raises(ValueError):
        commands.hold(APT, *bad)


def test_commands_refuse_empty_or_non_string_arguments():
    with pytest.raises(ValueError):
        Command(())
    with pytest.raises(ValueError):
        Command(("kubeadm", ""))
    with pytest.raises(ValueError):
        commands.systemctl("enable")


@pytest.mark.parametrize("family", [APT, DNF])
def test_repository_round_trip(family):
    text = repository.render(family, MinorVersion(1, 31))
    assert "https://pkgs.k8s.io/core:/stable:/v1.31/" in text
    assert repository.configured_minor(text) == MinorVersion(1, 31)
    if family is DNF:
        assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" in text


def test_repository_minor_unknown():
    assert repository.configured_minor("deb http://example.org stable main") is None
