"""RHEL, Rocky, Alma, Fedora: dnf or yum and rpm. The repository file excludes the Kubernetes
packages, so nothing moves them between upgrades; installing lifts the exclusion for one run.

How a run lifts it depends on the tool. dnf 5 (Fedora 41 and later, where `dnf` and `yum` are
dnf 5) dropped `--disableexcludes` and answers it with "Unknown argument" and exit status 2; it
takes the configuration option instead, `--setopt=disable_excludes=kubernetes`, which dnf 4
(RHEL, Rocky and Alma 8 to 10) reads as well, since both keep `disable_excludes` in their main
configuration. So `dnf` hosts get the option, one argv for both generations, without asking
the host which it has. yum 3 (RHEL and CentOS 7, picked only where no dnf is installed) keeps
the flag it has always had."""

from __future__ import annotations

from kubeupgrade.host.commands import INSTALL_TIMEOUT, QUICK_TIMEOUT, UPDATE_TIMEOUT, kube_packages
from kubeupgrade.host.executor import Command
from kubeupgrade.host.platforms.packaged import PackagePlatform, unambiguous_versions
from kubeupgrade.model.versions import MinorVersion, PackageVersion

YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"


class RpmPlatform(PackagePlatform):
    repository_file = YUM_REPO
    repository_files = ("/etc/yum.repos.d/*.repo",)
    refusals = ("Unable to find a match", "No match for argument", "was not found",
                # the repository's exclusion held: nothing but a changed argv helps
                "matches only excluded packages", "filtered out by exclude filtering",
                "Unknown argument")

    def __init__(self, tool: str) -> None:
        if tool not in ("dnf", "yum"):
            raise ValueError(f"not an rpm package manager: {tool!r}")
        self.name = self.tool = self.marker = tool
        self.lift_excludes = ("--setopt=disable_excludes=kubernetes" if tool == "dnf"
                              else "--disableexcludes=kubernetes")

    def render_repository(self, minor: MinorVersion) -> str:
        base = f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/rpm/"
        return ("[kubernetes]\nname=Kubernetes\n"
                f"baseurl={base}\nenabled=1\ngpgcheck=1\ngpgkey={base}repodata/repomd.xml.key\n"
                "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")

    def refresh_metadata(self) -> Command:
        return Command((self.tool, "makecache", self.lift_excludes), UPDATE_TIMEOUT)

    def list_versions(self, *packages: str) -> Command:
        return Command((self.tool, "list", "--showduplicates", *kube_packages(packages),
                        self.lift_excludes), UPDATE_TIMEOUT, reads_only=True)

    def installed_versions(self, packages: tuple[str, ...]) -> Command:
        return Command(("rpm", "-q", *kube_packages(packages)), QUICK_TIMEOUT, reads_only=True)

    def parse_installed(self, packages: tuple[str, ...], output: str) -> dict[str, str]:
        # "kubeadm-1.31.2-150500.1.1.x86_64" per installed package, "package kubelet is not
        # installed" for a missing one
        printed = []
        for line in output.splitlines():
            line = line.strip()
            for name in packages:
                rest = line.removeprefix(f"{name}-")
                if rest != line and rest[:1].isdigit():
                    printed.append((name, rest.rsplit(".", 1)[0]))
        return unambiguous_versions(packages, printed)

    def install_command(self, pins: dict[str, PackageVersion], *, download_only: bool) -> Command:
        argv = [self.tool, "install", "-y"]
        if download_only:
            argv.append("--downloadonly")
        argv += [f"{name}-{pins[name].raw}" for name in kube_packages(tuple(sorted(pins)))]
        argv.append(self.lift_excludes)
        return Command(tuple(argv), INSTALL_TIMEOUT)
