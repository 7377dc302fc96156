"""Argv builders of the platforms and of kubeadm, and the repository file: table-driven, no I/O."""

import pytest

from kubeupgrade.host import commands
from kubeupgrade.host.executor import Command
from kubeupgrade.host.platforms import platform_for, systemd
from kubeupgrade.host.platforms.packaged import configured_minor, retargeted
from kubeupgrade.host.platforms.rpm import RpmPlatform, repository_ids
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import MinorVersion, parse_package_version, parse_version

APT, DNF, YUM = (platform_for(f) for f in (OsFamily.APT, OsFamily.DNF, OsFamily.YUM))


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        (APT.refresh_metadata(), ("apt-get", "update", "-q")),
        # dnf 5 knows no --disableexcludes; dnf 4 and 5 both read the option
        (DNF.refresh_metadata(), ("dnf", "makecache", "--setopt=disable_excludes=kubernetes")),
        (YUM.refresh_metadata(), ("yum", "makecache", "--disableexcludes=kubernetes")),
        (DNF.list_versions("kubeadm"), ("dnf", "list", "--showduplicates", "kubeadm", "--setopt=disable_excludes=kubernetes")),
        (APT.list_versions("kubeadm"), ("apt-cache", "madison", "kubeadm")),
        (YUM.list_versions("kubelet"), ("yum", "list", "--showduplicates", "kubelet", "--disableexcludes=kubernetes")),
        (APT.installed_versions(("kubelet", "kubectl")), ("dpkg-query", "-W", "--showformat=${Package}\\t${Version}\\n", "kubelet", "kubectl")),
        (DNF.installed_versions(("kubelet",)), ("rpm", "-q", "kubelet")),
        (APT.hold("kubelet", "kubectl"), ("apt-mark", "hold", "kubelet", "kubectl")),
        (APT.unhold("kubeadm"), ("apt-mark", "unhold", "kubeadm")),
        (APT.install_command({"kubeadm": parse_package_version("1.31.2-1.1")}, download_only=False),
         # the operator's /etc/default/kubelet is kept, never a prompt with nobody to answer
         ("apt-get", "install", "-y", "-q", "kubeadm=1.31.2-1.1", "-o", "Dpkg::Options::=--force-confdef",
          "-o", "Dpkg::Options::=--force-confold")),
        (APT.install_command({"kubelet": parse_package_version("1.31.2-1.1"), "kubectl": parse_package_version("1.31.2-1.1")}, download_only=True),
         ("apt-get", "install", "-y", "-q", "--download-only", "--allow-change-held-packages",
          "kubectl=1.31.2-1.1", "kubelet=1.31.2-1.1")),
        (DNF.install_command({"kubeadm": parse_package_version("1.31.2-150500.1.1")}, download_only=False),
         ("dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", "--setopt=disable_excludes=kubernetes")),
        (YUM.install_command({"kubeadm": parse_package_version("1.31.2-150500.1.1")}, download_only=True),
         ("yum", "install", "-y", "--downloadonly", "kubeadm-1.31.2-150500.1.1", "--disableexcludes=kubernetes")),
        (commands.kubeadm_upgrade_apply(parse_version("1.31.2"), certificate_renewal=True, etcd_upgrade=False),
         ("kubeadm", "upgrade", "apply", "v1.31.2", "--yes", "--certificate-renewal=true", "--etcd-upgrade=false")),
        (commands.kubeadm_upgrade_apply(parse_version("1.31.2"), certificate_renewal=False, etcd_upgrade=True, config_file="/etc/k/u.yaml"),
         ("kubeadm", "upgrade", "apply", "v1.31.2", "--config", "/etc/k/u.yaml", "--yes")),
        (commands.kubeadm_upgrade_node(certificate_renewal=False, etcd_upgrade=True, config_file="/etc/k/u.yaml"),
         ("kubeadm", "upgrade", "node", "--config", "/etc/k/u.yaml")),
        (commands.kubeadm_upgrade_node(certificate_renewal=True, etcd_upgrade=True),
         ("kubeadm", "upgrade", "node", "--certificate-renewal=true", "--etcd-upgrade=true")),
        (systemd.systemctl("restart"), ("systemctl", "restart", "kubelet")),
        (systemd.systemctl("daemon-reload", None), ("systemctl", "daemon-reload")),
        (commands.stop_kube_apiserver(), ("killall", "-s", "SIGTERM", "kube-apiserver")),
    ],
)
def test_argv(command, argv):
    assert command.argv == argv
    assert command.timeout > 0


def test_yum_and_dnf_have_no_holds():
    assert DNF.hold("kubeadm") is None and YUM.unhold("kubeadm") is None


@pytest.mark.parametrize("bad", [("kubeadm; rm -rf /",), ("docker",), ()])
def test_only_kubernetes_packages(bad):
    with pytest.raises(ValueError):
        APT.hold(*bad)


def test_commands_refuse_empty_or_non_string_arguments():
    with pytest.raises(ValueError):
        Command(())
    with pytest.raises(ValueError):
        Command(("kubeadm", ""))
    with pytest.raises(ValueError):
        systemd.systemctl("enable")


@pytest.mark.parametrize("platform", [APT, DNF])
def test_repository_round_trip(platform):
    text = platform.render_repository(MinorVersion(1, 31))
    assert "https://pkgs.k8s.io/core:/stable:/v1.31/" in text
    assert configured_minor(text) == MinorVersion(1, 31)
    if platform is DNF:
        assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" in text


def test_repository_minor_unknown():
    assert configured_minor("deb http://example.org stable main") is None
    # the legacy repository, frozen in 2024: replaced by pkgs.k8s.io's, not edited
    assert retargeted("deb https://apt.kubernetes.io/ kubernetes-xenial main\n", MinorVersion(1, 31)) is None


@pytest.mark.parametrize(("text", "expected"), [
    # a mirror keeping pkgs.k8s.io's paths, and the keyring the host verifies with
    ("deb [arch=amd64 signed-by=/usr/share/keyrings/kubernetes-archive-keyring.gpg] "
     "https://nexus.corp.example/repository/k8s/core:/stable:/v1.30/deb/ /\n",
     "deb [arch=amd64 signed-by=/usr/share/keyrings/kubernetes-archive-keyring.gpg] "
     "https://nexus.corp.example/repository/k8s/core:/stable:/v1.31/deb/ /\n"),
    # every address of an rpm repo file (baseurl and gpgkey), its other options and comments kept
    ("# ours\n[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n"
     "enabled=1\ngpgcheck=1\nproxy=http://proxy.corp.example:3128\n"
     "gpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n"
     "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n",
     "# ours\n[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n"
     "enabled=1\ngpgcheck=1\nproxy=http://proxy.corp.example:3128\n"
     "gpgkey=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/repodata/repomd.xml.key\n"
     "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"),
    # already there: nothing changes
    ("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n",
     "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n"),
])
def test_a_host_s_own_repository_keeps_everything_but_the_minor(text, expected):
    assert configured_minor(text) is not None
    assert retargeted(text, MinorVersion(1, 31)) == expected
    assert configured_minor(expected) == MinorVersion(1, 31)


@pytest.mark.parametrize(
    ("platform", "packages", "printed", "versions"),
    [
        # dpkg-query -W: a package known but not installed (removed, its config kept) prints no version
        (APT, ("kubeadm", "kubelet", "kubectl"), "kubeadm\t1.31.2-1.1\nkubelet\t\nkubectl\t1.30.4-1.1\n",
         {"kubeadm": "1.31.2-1.1", "kubectl": "1.30.4-1.1"}),
        (APT, ("kubelet",), "", {}),  # unknown: named on stderr only, exit 1
        (APT, ("kubelet",), "kubelet\t1.31.2-1.1\nkubelet\t1.30.4-1.1\n", {}),  # two: neither is sure
        (APT, ("kubelet",), "kubectl\t1.31.2-1.1\n", {}),  # not what was asked
        # rpm -q: NAME-VERSION-RELEASE.ARCH, or a sentence for a missing one
        (DNF, ("kubeadm", "kubelet"), "kubeadm-1.31.2-150500.1.1.x86_64\npackage kubelet is not installed\n",
         {"kubeadm": "1.31.2-150500.1.1"}),
        (DNF, ("kubelet", "kubectl"), "kubectl-1.31.2-150500.1.1.aarch64\nkubelet-1.31.2-150500.1.1.aarch64\n",
         {"kubelet": "1.31.2-150500.1.1", "kubectl": "1.31.2-150500.1.1"}),
        (DNF, ("kubelet",), "kubelet-1.31.2-150500.1.1.x86_64\nkubelet-1.30.4-150500.1.1.x86_64\n", {}),
    ],
)
def test_one_query_reads_each_installed_package(platform, packages, printed, versions):
    assert platform.parse_installed(packages, printed) == versions


@pytest.mark.parametrize(("text", "ids"), [
    (DNF.render_repository(MinorVersion(1, 31)), ["kubernetes"]),
    # a host's own id, its gpgkey line naming the layout too, beside a section of another vendor
    ("[k8s-stable]\nbaseurl = https://pulp.corp.example/k8s/core:/stable:/v1.30/rpm/\n"
     "gpgkey=https://pulp.corp.example/k8s/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n"
     "[epel]\nmetalink=https://mirrors.fedoraproject.org/metalink?repo=epel-9\n", ["k8s-stable"]),
    ("[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n"
     "[kubernetes-next]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n", ["kubernetes", "kubernetes-next"]),
    # an id dnf would not take stays out of any argv
    ("[k8s; rm -rf /]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n", []),
    ("[main]\ngpgcheck=1\n", []),
])
def test_the_repository_ids_whose_exclusion_is_lifted_are_read_from_the_repo_file(text, ids):
    assert repository_ids(text) == ids


def test_lifting_names_every_repository_id_the_way_each_tool_takes_them():
    pins = {"kubeadm": parse_package_version("1.31.2-150500.1.1")}
    dnf = RpmPlatform("dnf", ("k8s", "k8s-next"))
    assert dnf.install_command(pins, download_only=False).argv == (
        "dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", "--setopt=disable_excludes=k8s,k8s-next")
    yum = RpmPlatform("yum", ("k8s", "k8s-next"))
    assert yum.refresh_metadata().argv == ("yum", "makecache", "--disableexcludes=k8s", "--disableexcludes=k8s-next")
    with pytest.raises(ValueError):
        RpmPlatform("dnf", ("a b",))
