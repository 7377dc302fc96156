"""RHEL, Rocky, Alma, Fedora: dnf or yum and rpm. The repository file excludes the Kubernetes
packages, so nothing moves them between upgrades; installing lifts the exclusion for one run.

How a run lifts it depends on the tool. dnf 5 (Fedora 41 and later, where `dnf` and `yum` are
dnf 5) dropped `--disableexcludes` and answers it with "Unknown argument" and exit status 2; it
takes the configuration option instead, `--setopt=disable_excludes=kubernetes`, which dnf 4
(RHEL, Rocky and Alma 8 to 10) reads as well, since both keep `disable_excludes` in their main
configuration. So `dnf` hosts get the option, one argv for both generations, without asking
the host which it has. yum 3 (RHEL and CentOS 7, picked only where no dnf is installed) keeps
the flag it has always had.

Both name the repository by its id, the `[section]` of its .repo file: kubeadm's install guide
calls it `kubernetes`, but a host configured otherwise keeps its own, so the ids are read from
the files that name pkgs.k8s.io-style addresses (`bound`) and lifting names those."""

from __future__ import annotations

import re

from kubeupgrade.host.commands import INSTALL_TIMEOUT, QUICK_TIMEOUT, UPDATE_TIMEOUT, kube_packages
from kubeupgrade.host.context import HostContext
from kubeupgrade.host.executor import Command
from kubeupgrade.host.platforms.packaged import PackagePlatform, configured_minor, installed_twice
from kubeupgrade.model.versions import MinorVersion, PackageVersion

YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
DEFAULT_REPOSITORY = "kubernetes"  # the id kubeadm's install guide gives it
# what dnf accepts in a repository id; anything else read from a file stays out of an argv
_REPOSITORY_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_ADDRESS_KEYS = ("baseurl", "mirrorlist", "metalink")


def repository_ids(text: str) -> list[str]:
    """The ids of the sections of a .repo file whose address is pkgs.k8s.io-style, in order."""
    found: list[str] = []
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, _, value = line.partition("=")
        if (section and key.strip().lower() in _ADDRESS_KEYS and configured_minor(value)
                and _REPOSITORY_ID.fullmatch(section) and section not in found):
            found.append(section)
    return found


class RpmPlatform(PackagePlatform):
    repository_file = YUM_REPO
    repository_files = ("/etc/yum.repos.d/*.repo",)
    refusals = ("Unable to find a match", "No match for argument", "was not found",
                # the repository's exclusion held: nothing but a changed argv helps
                "matches only excluded packages", "filtered out by exclude filtering",
                "Unknown argument")

    def __init__(self, tool: str, repositories: tuple[str, ...] = (DEFAULT_REPOSITORY,)) -> None:
        if tool not in ("dnf", "yum"):
            raise ValueError(f"not an rpm package manager: {tool!r}")
        if not repositories or not all(_REPOSITORY_ID.fullmatch(r) for r in repositories):
            raise ValueError(f"not repository ids: {repositories!r}")
        self.name = self.tool = self.marker = tool
        self.repositories = repositories
        # dnf takes the ids as one comma-separated option, yum 3 the flag once per id
        self.lift_excludes = ((f"--setopt=disable_excludes={','.join(repositories)}",) if tool == "dnf"
                              else tuple(f"--disableexcludes={r}" for r in repositories))

    def bound(self, ctx: HostContext) -> RpmPlatform:
        ids = [i for text in self.repository_texts(ctx).values() for i in repository_ids(text)]
        found = tuple(dict.fromkeys(ids)) or (DEFAULT_REPOSITORY,)
        return self if found == self.repositories else RpmPlatform(self.tool, found)

    def render_repository(self, minor: MinorVersion) -> str:
        base = f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/rpm/"
        return ("[kubernetes]\nname=Kubernetes\n"
                f"baseurl={base}\nenabled=1\ngpgcheck=1\ngpgkey={base}repodata/repomd.xml.key\n"
                "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")

    def refresh_metadata(self) -> Command:
        return Command((self.tool, "makecache", *self.lift_excludes), UPDATE_TIMEOUT)

    def list_versions(self, *packages: str) -> Command:
        return Command((self.tool, "list", "--showduplicates", *kube_packages(packages),
                        *self.lift_excludes), UPDATE_TIMEOUT, reads_only=True)

    def installed_versions(self, packages: tuple[str, ...]) -> Command:
        return Command(("rpm", "-q", *kube_packages(packages)), QUICK_TIMEOUT, reads_only=True)

    def installed_rows(self, packages: tuple[str, ...], output: str) -> list[tuple[str, str]]:
        # "kubeadm-1.31.2-150500.1.1.x86_64" per installed package, "package kubelet is not
        # installed" for a missing one; a package twice after a transaction killed between
        # installing the new version and erasing the old
        printed = []
        for line in output.splitlines():
            line = line.strip()
            for name in packages:
                rest = line.removeprefix(f"{name}-")
                if rest != line and rest[:1].isdigit():
                    printed.append((name, rest.rsplit(".", 1)[0]))
        return printed

    def repair(self, ctx: HostContext) -> None:
        """A transaction killed between installing the new versions and erasing the old ones
        (rpm erases last) leaves a package installed twice, and dnf then says the newer is
        installed and changes nothing. Erase the older entry of each of the three packages, the
        step the transaction did not reach; another package's duplicates are the operator's."""
        packages = ("kubeadm", "kubelet", "kubectl")
        result = ctx.run(self.installed_versions(packages), f"query {', '.join(packages)}", check=False)
        twice = installed_twice(packages, self.installed_rows(packages, result.stdout if result is not None else ""))
        older = [f"{name}-{version}" for name, (_, versions) in twice.items() for version in versions]
        if older:
            ctx.run(Command(("rpm", "-e", *older), INSTALL_TIMEOUT), f"erase the older {', '.join(older)}")

    def remove_older_hint(self, package: str, older: list[str]) -> str:
        # dnf 4's `remove --duplicates` and yum's `package-cleanup --cleandupes` do this for
        # every package; dnf 5 has neither, and rpm's own erase works under all three
        return "remove the older with `rpm -e " + " ".join(f"{package}-{v}" for v in older) + "`"

    def install_command(self, pins: dict[str, PackageVersion], *, download_only: bool) -> Command:
        argv = [self.tool, "install", "-y"]
        if download_only:
            argv.append("--downloadonly")
        argv += [f"{name}-{pins[name].raw}" for name in kube_packages(tuple(sorted(pins)))]
        argv += self.lift_excludes
        return Command(tuple(argv), INSTALL_TIMEOUT)
