"""Debian and Ubuntu: apt-get, apt-cache and dpkg; packages held with apt-mark."""

from __future__ import annotations

from kubeupgrade.host.commands import INSTALL_TIMEOUT, QUICK_TIMEOUT, UPDATE_TIMEOUT, kube_packages
from kubeupgrade.host.context import HostContext
from kubeupgrade.host.executor import Command
from kubeupgrade.host.platforms.packaged import PackagePlatform
from kubeupgrade.model.versions import MinorVersion, PackageVersion

APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"


class AptPlatform(PackagePlatform):
    name = "apt"
    marker = "apt-get"
    repository_file = APT_SOURCE
    refusals = ("Unable to locate package", "was not found",
                "Packages were downgraded and -y was used without --allow-downgrades")

    def render_repository(self, minor: MinorVersion) -> str:
        return (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/deb/ /\n")

    def refresh_metadata(self) -> Command:
        return Command(("apt-get", "update", "-q"), UPDATE_TIMEOUT)

    def list_versions(self, package: str) -> Command:
        return Command(("apt-cache", "madison", *kube_packages((package,))), QUICK_TIMEOUT)

    def installed_version(self, package: str) -> Command:
        return Command(("dpkg-query", "-W", "--showformat=${Version}", *kube_packages((package,))),
                       QUICK_TIMEOUT)

    def parse_installed(self, package: str, output: str) -> str:
        return output

    def hold(self, *packages: str) -> Command | None:
        return Command(("apt-mark", "hold", *kube_packages(packages)), QUICK_TIMEOUT)

    def unhold(self, *packages: str) -> Command | None:
        return Command(("apt-mark", "unhold", *kube_packages(packages)), QUICK_TIMEOUT)

    def install_command(self, pins: dict[str, PackageVersion], *, download_only: bool) -> Command:
        names = kube_packages(tuple(sorted(pins)))
        argv = ["apt-get", "install", "-y", "-q"]
        if download_only:
            argv.append("--download-only")
        argv += [f"{name}={pins[name].raw}" for name in names]
        return Command(tuple(argv), INSTALL_TIMEOUT)

    def repair(self, ctx: HostContext) -> None:
        """An apt run killed half-way leaves dpkg 'interrupted'; finish its configuration first."""
        for package in ("kubeadm", "kubelet", "kubectl"):
            result = ctx.run(Command(("dpkg-query", "-W", "--showformat=${Status}", package),
                                     QUICK_TIMEOUT), f"query {package}", check=False)
            if result is not None and result.ok and "unpacked" in result.stdout:
                ctx.run(Command(("dpkg", "--configure", "-a"), INSTALL_TIMEOUT), "dpkg --configure -a")
                return
