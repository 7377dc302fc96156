"""Debian and Ubuntu: apt-get, apt-cache and dpkg; packages held with apt-mark."""

from __future__ import annotations

from kubeupgrade.host.commands import INSTALL_TIMEOUT, QUICK_TIMEOUT, UPDATE_TIMEOUT, kube_packages
from kubeupgrade.host.context import HostContext
from kubeupgrade.host.executor import Command
from kubeupgrade.host.platforms.packaged import PackagePlatform
from kubeupgrade.model.versions import MinorVersion, PackageVersion

APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
# dpkg's states of a package whose unpacking, configuration or triggers did not finish (the last
# word of its status, "install ok half-configured", "hold reinstreq half-installed"): left by an
# apt or dpkg run killed half-way, after which apt refuses to run until `dpkg --configure -a`.
UNFINISHED_STATES = frozenset({"half-installed", "unpacked", "half-configured",
                               "triggers-awaited", "triggers-pending"})


class AptPlatform(PackagePlatform):
    name = "apt"
    marker = "apt-get"
    repository_file = APT_SOURCE
    # one-line sources (`.list`) and deb822 ones (`.sources`, which Ubuntu 24.04 ships and
    # `apt modernize-sources` writes from `.list` files on apt 3)
    repository_files = ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list",
                        "/etc/apt/sources.list.d/*.sources")
    refusals = ("Unable to locate package", "was not found",
                "Packages were downgraded and -y was used without --allow-downgrades")

    def render_repository(self, minor: MinorVersion) -> str:
        return (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/deb/ /\n")

    def refresh_metadata(self) -> Command:
        return Command(("apt-get", "update", "-q"), UPDATE_TIMEOUT)

    def list_versions(self, *packages: str) -> Command:
        return Command(("apt-cache", "madison", *kube_packages(packages)), QUICK_TIMEOUT, reads_only=True)

    def installed_versions(self, packages: tuple[str, ...]) -> Command:
        return _dpkg_query("${Version}", packages)

    def installed_rows(self, packages: tuple[str, ...], output: str) -> list[tuple[str, str]]:
        # a package dpkg knows but has not installed prints no version (one it does not know is
        # named on stderr only); one of two architectures (multiarch) prints a line each
        return [(name, version) for name, version in _dpkg_rows(output) if name in packages and version]

    def remove_older_hint(self, package: str, older: list[str]) -> str:
        return f"keep one architecture's (`dpkg -l '{package}*'`; `apt-get remove {package}:ARCH`)"

    def hold(self, *packages: str) -> Command | None:
        return Command(("apt-mark", "hold", *kube_packages(packages)), QUICK_TIMEOUT)

    def unhold(self, *packages: str) -> Command | None:
        return Command(("apt-mark", "unhold", *kube_packages(packages)), QUICK_TIMEOUT)

    def install_command(self, pins: dict[str, PackageVersion], *, download_only: bool) -> Command:
        names = kube_packages(tuple(sorted(pins)))
        argv = ["apt-get", "install", "-y", "-q"]
        if download_only:
            # apt refuses to change a held package under -y even when it only downloads it; the
            # hold (kubeadm's install guide sets one) stays, as nothing is installed
            argv += ["--download-only", "--allow-change-held-packages"]
        argv += [f"{name}={pins[name].raw}" for name in names]
        if not download_only:
            # The kubelet package owns a conffile (/etc/default/kubelet, where operators put
            # KUBELET_EXTRA_ARGS). Where the host's copy was changed or was there before the
            # package (hosts that came from apt.kubernetes.io), dpkg would ask what to do and,
            # with no terminal, fail at "end of file on stdin at conffile prompt". The
            # operator's copy is kept, and dpkg's default taken where it has one. Last, as
            # apt takes options anywhere: the argv begins as the documented install does.
            argv += ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
        return Command(tuple(argv), INSTALL_TIMEOUT)

    def repair(self, ctx: HostContext) -> None:
        """An apt run killed half-way (ours too: a crash, an agent killed with its command)
        leaves dpkg 'interrupted'; finish its configuration first. Only when one of the
        packages the upgrade owns is left so: another package's is the operator's to repair."""
        packages = ("kubeadm", "kubelet", "kubectl")
        result = ctx.run(_dpkg_query("${Status}", packages), f"query {', '.join(packages)}", check=False)
        # non-zero when one is not installed at all; the others' lines still hold
        if any(name in packages and status.rpartition(" ")[2] in UNFINISHED_STATES
               for name, status in _dpkg_rows(result.stdout if result is not None else "")):
            ctx.run(Command(("dpkg", "--configure", "-a"), INSTALL_TIMEOUT), "dpkg --configure -a")


def _dpkg_query(field: str, packages: tuple[str, ...]) -> Command:
    """`field` of each package, a line each. dpkg-query expands the format's backslash escapes
    itself, so they stay escaped in the argv."""
    return Command(("dpkg-query", "-W", f"--showformat=${{Package}}\\t{field}\\n", *kube_packages(packages)),
                   QUICK_TIMEOUT, reads_only=True)


def _dpkg_rows(output: str) -> list[tuple[str, str]]:
    """(package, field) per line of what `_dpkg_query` printed; other lines are skipped."""
    rows = [line.split("\t") for line in output.splitlines()]
    return [(fields[0], fields[1].strip()) for fields in rows if len(fields) == 2]
