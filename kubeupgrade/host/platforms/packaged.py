"""What apt and rpm hosts share: Kubernetes packages from pkgs.k8s.io (one repository per
minor), held or excluded between upgrades, and a kubelet run by systemd.

`PackagePlatform` does the repository and package steps once; `apt` and `rpm` supply their argv,
their repository file and how their tools print versions.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from abc import abstractmethod
from pathlib import Path
from typing import Any

from kubeupgrade.errors import PermanentError
from kubeupgrade.host.commands import QUICK_TIMEOUT, kube_packages, swap_devices
from kubeupgrade.host.context import ALREADY_DONE, DONE, HostContext, StepOutcome
from kubeupgrade.host.executor import Command
from kubeupgrade.host.files import replace_file
from kubeupgrade.host.kubelet_flags import KUBELET_FLAG_FILES, fail_swap_on_flag
from kubeupgrade.host.listings import ListedPackage, parse_listing
from kubeupgrade.host.platforms import systemd
from kubeupgrade.host.platforms.base import HostPlatform
from kubeupgrade.model.versions import (
    KubeVersion,
    MinorVersion,
    PackageVersion,
    VersionSpec,
    parse_package_version,
)

# pkgs.k8s.io's layout, one repository per minor: served by pkgs.k8s.io itself or by a mirror or
# proxy that keeps its paths (Artifactory, Nexus, Pulp, an offline copy)
_MINOR = re.compile(r"/core:/stable:/v(\d+)\.(\d+)/")


def configured_minor(text: str) -> MinorVersion | None:
    """The minor a pkgs.k8s.io repository configuration (apt source or rpm repo file) points at,
    wherever it is served from."""
    match = _MINOR.search(text)
    return MinorVersion(int(match[1]), int(match[2])) if match else None


def retargeted(text: str, minor: MinorVersion) -> str | None:
    """`text` pointed at `minor` the way kubeadm's documentation changes the repository: the
    minor in each repository address is edited and every other byte kept (the mirror, the
    keyring the host verifies with, options and other lines). None if it names no such
    address."""
    if configured_minor(text) is None:
        return None
    return _MINOR.sub(f"/core:/stable:/{minor.tag}/", text)


class PackagePlatform(HostPlatform):
    # where pkgs.k8s.io's configuration is written on a host that has none
    repository_file: str
    # every file the package manager reads repositories from, in its order ("*" as in a glob)
    repository_files: tuple[str, ...]

    # -- what each package manager says differently -------------------------------------------
    @abstractmethod
    def render_repository(self, minor: MinorVersion) -> str: ...

    @abstractmethod
    def refresh_metadata(self) -> Command: ...

    @abstractmethod
    def list_versions(self, *packages: str) -> Command:
        """The versions the repository offers of each of `packages`, in one listing."""

    @abstractmethod
    def installed_versions(self, packages: tuple[str, ...]) -> Command:
        """One query for the installed version of each of `packages` (the tools take several:
        one process on the host instead of one per package)."""

    @abstractmethod
    def installed_rows(self, packages: tuple[str, ...], output: str) -> list[tuple[str, str]]:
        """(package, version string) for each line `installed_versions` printed for one of
        `packages` as installed: a package twice when its database holds two versions."""

    def parse_installed(self, packages: tuple[str, ...], output: str) -> dict[str, str]:
        """package -> version string, for the packages `installed_versions` printed as installed
        (a package missing, or printed ambiguously, is left out)."""
        return unambiguous_versions(packages, self.installed_rows(packages, output))

    def remove_older_hint(self, package: str, older: list[str]) -> str:
        """How an operator removes the `older` entries of a package installed twice."""
        return f"remove the older with the package manager ({', '.join(older)})"

    @abstractmethod
    def install_command(self, pins: dict[str, PackageVersion], *, download_only: bool) -> Command: ...

    def bound(self, ctx: HostContext) -> PackagePlatform:
        """This platform with what its commands name on the host in `ctx` (rpm: the ids of the
        repositories whose exclusion an install lifts); itself where nothing differs."""
        return self

    def hold(self, *packages: str) -> Command | None:
        """Keep the packages from moving between upgrades (None: the repository does it)."""
        return None

    def unhold(self, *packages: str) -> Command | None:
        return None

    def repair(self, ctx: HostContext) -> None:
        """Finish what an interrupted package run left half done, before changing anything."""

    # -- the steps ----------------------------------------------------------------------------
    def installed_packages(self, ctx: HostContext, packages: tuple[str, ...], *,
                           refuse_twice: bool = False) -> dict[str, PackageVersion | None]:
        """package -> its installed version, None if it is not installed or cannot be read. The
        query's exit status is not trusted either way: it is non-zero when some are missing, and
        what it printed for the others still holds. With `refuse_twice`, a package installed
        twice is a PermanentError naming both versions and how to remove the older: no install
        mends it (the package manager says the newer is installed and changes nothing)."""
        result = ctx.run(self.installed_versions(packages), f"query {', '.join(packages)}", check=False)
        rows = self.installed_rows(packages, result.stdout) if result is not None else []
        if refuse_twice:
            self._refuse_twice(packages, rows)
        printed = unambiguous_versions(packages, rows)
        found: dict[str, PackageVersion | None] = {}
        for name in packages:
            try:
                found[name] = parse_package_version(printed[name]) if name in printed else None
            except ValueError:
                found[name] = None
        return found

    def _refuse_twice(self, packages: tuple[str, ...], rows: list[tuple[str, str]]) -> None:
        for name, (versions, older) in installed_twice(packages, rows).items():
            hint = self.remove_older_hint(name, older) if older else "remove all but one"
            raise PermanentError(
                f"{name} is installed more than once ({', '.join(versions)}), as a package "
                f"transaction cut off half-way leaves it; {hint} on this host, then retry")

    def installed_package(self, ctx: HostContext, package: str) -> PackageVersion | None:
        return self.installed_packages(ctx, (package,))[package]

    def installed(self, ctx: HostContext, component: str) -> KubeVersion | None:
        package = self.installed_package(ctx, component)
        return package.version if package else None

    def facts(self, ctx: HostContext) -> dict[str, Any]:
        minors = [m for m in map(configured_minor, self.repository_texts(ctx).values()) if m]
        minor = min(minors) if minors else None
        installed = {name: (p.raw if p else None)
                     for name, p in self.installed_packages(ctx, ("kubeadm", "kubelet", "kubectl")).items()}
        swap = ctx.run(swap_devices(), "swapon --show", check=False)  # the kubelet may refuse swap
        flags = [ctx.path(name).read_text(errors="replace") for name in KUBELET_FLAG_FILES
                 if ctx.path(name).is_file()]
        return {"installed": installed, "repository_minor": minor.plain if minor else None,
                "swap_on": bool(swap and swap.ok and swap.stdout.strip()),
                "fail_swap_on_flag": fail_swap_on_flag(flags)}

    # -- the repository -----------------------------------------------------------------------
    def repository_texts(self, ctx: HostContext) -> dict[str, str]:
        """host path -> text of each file the package manager reads that configures a
        pkgs.k8s.io-style repository, in the order it reads them: wherever the host keeps it
        (`apt modernize-sources` turns `kubernetes.list` into a deb822 `kubernetes.sources`;
        configuration management names files its own way). The default file alone, as it is
        or empty, when none does."""
        found: dict[str, str] = {}
        for pattern in self.repository_files:
            directory, _, name = pattern.rpartition("/")
            paths = sorted(ctx.path(directory).glob(name)) if "*" in name else [ctx.path(pattern)]
            for path in paths:
                if not path.is_file():  # a FIFO or socket would never finish reading
                    continue
                text = _read(path)
                if configured_minor(text) is not None:
                    found["/" + str(path.relative_to(ctx.root))] = text
        return found or {self.repository_file: _read(ctx.path(self.repository_file))}

    def set_source(self, ctx: HostContext, minor: MinorVersion) -> StepOutcome:
        """Point the package repository at `minor` and refresh metadata."""
        current = self.repository_texts(ctx)
        if all(configured_minor(text) == minor for text in current.values()) and \
                ctx.marked(f"repository-{minor.plain}"):
            return StepOutcome(ALREADY_DONE, f"repository already at {minor.tag}")
        # Each file the host configures it in with the minor changed; pkgs.k8s.io's documented
        # configuration only where there is none we recognise (no file, or the frozen
        # apt.kubernetes.io)
        wanted = {name: retargeted(text, minor) or self.render_repository(minor)
                  for name, text in current.items()}
        kept = any(retargeted(text, minor) for text in current.values())
        with ctx.changing(f"write {', '.join(current)}", QUICK_TIMEOUT):
            replaced = {name: text for name, text in current.items()
                        if text and configured_minor(text) != minor}
            for name, text in replaced.items():
                path = ctx.path(name)
                # back up before mutating, as kubeadm does with manifests; apt skips a name
                # ending in .bak silently (another suffix in sources.list.d draws a notice from
                # every apt run), dnf reads only .repo files
                replace_file(path.with_name(path.name + ".kubeupgrade.bak"), text.encode(errors="surrogateescape"))
            if replaced:
                # What this campaign's hop replaced, kept before the change so a hop that fails
                # even while refreshing (the minor's repository does not exist) can put it back.
                ctx.mark(f"repository-replaced-{minor.plain}",
                         previous={**self._replaced(ctx, minor), **replaced})
            for name, text in wanted.items():
                if current[name] != text:
                    path = ctx.path(name)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    replace_file(path, text.encode(errors="surrogateescape"))
        self.repair(ctx)
        ctx.run(self.bound(ctx).refresh_metadata(), "refresh package metadata")
        ctx.mark(f"repository-{minor.plain}")
        where = "the host's own repository address" if kept else "pkgs.k8s.io"
        files = "" if list(current) == [self.repository_file] else f" in {', '.join(current)}"
        return StepOutcome(DONE, f"repository set to {minor.tag} ({where}){files}", ctx.output())

    def _replaced(self, ctx: HostContext, minor: MinorVersion) -> dict[str, str]:
        """host path -> the text this campaign's hop replaced there (a record written before
        files other than the default one were read holds the default file's text alone)."""
        marked = ctx.marked(f"repository-replaced-{minor.plain}") or {}
        previous = marked.get("previous")
        if isinstance(previous, str):
            return {self.repository_file: previous}
        if isinstance(previous, dict):
            # only files the package manager reads: a damaged or forged record names no other
            return {name: text for name, text in previous.items()
                    if isinstance(name, str) and isinstance(text, str) and self._is_repository_file(name)}
        return {}

    def _is_repository_file(self, name: str) -> bool:
        if posixpath.normpath(name) != name:
            return False
        return name == self.repository_file or any(
            posixpath.dirname(name) == posixpath.dirname(pattern)
            and fnmatch.fnmatchcase(posixpath.basename(name), posixpath.basename(pattern))
            for pattern in self.repository_files)

    def restore_source(self, ctx: HostContext, minor: MinorVersion) -> StepOutcome:
        replaced = self._replaced(ctx, minor)
        if not replaced:
            return StepOutcome(ALREADY_DONE, "this campaign did not change the repository here")
        earlier = [m for m in map(configured_minor, replaced.values()) if m]
        label = min(earlier).tag if earlier else "its previous configuration"
        current = {name: _read(ctx.path(name)) for name in replaced}
        # a file changed since this campaign set it is someone else's to keep
        restore = {name: previous for name, previous in replaced.items()
                   if current[name] != previous and configured_minor(current[name]) == minor}
        if not restore:
            if all(current[name] == previous for name, previous in replaced.items()):
                return StepOutcome(ALREADY_DONE, f"repository already restored to {label}")
            return StepOutcome(ALREADY_DONE, "repository changed since this campaign set it; left as is")
        for name, previous in restore.items():
            replace_file(ctx.path(name), previous.encode(errors="surrogateescape"))
        ctx.unmark(f"repository-{minor.plain}")
        self.repair(ctx)
        ctx.run(self.bound(ctx).refresh_metadata(), "refresh package metadata")
        return StepOutcome(DONE, f"repository restored to {label}", ctx.output())

    def ensure_source(self, ctx: HostContext, minor: MinorVersion) -> None:
        """Installing needs the target's repository: set it again if it was restored or changed
        since set-repository ran (a retry after a failed hop)."""
        current = self.repository_texts(ctx)
        if any(configured_minor(text) != minor for text in current.values()) or \
                not ctx.marked(f"repository-{minor.plain}"):
            self.set_source(ctx, minor)

    def offered(self, ctx: HostContext, component: str, target: VersionSpec) -> list[ListedPackage]:
        return self.offered_all(ctx, (component,), target)[component]

    def offered_all(self, ctx: HostContext, components: tuple[str, ...],
                    target: VersionSpec) -> dict[str, list[ListedPackage]]:
        # One listing names every package (apt-cache madison and dnf list take several; a
        # package the repository lacks is said on stderr, and the others are listed)
        result = ctx.run(self.bound(ctx).list_versions(*components), f"list {', '.join(components)} versions",
                         check=False)
        listed = result.stdout if result is not None and result.ok else ""
        listing: dict[str, list[ListedPackage]] = {}
        for name in components:
            try:
                listing[name] = parse_listing(listed, name)
            except ValueError:  # nothing listed for it
                listing[name] = []
        return listing

    def install(self, ctx: HostContext, version: KubeVersion, package: str,
                components: tuple[str, ...], *, download_only: bool = False) -> StepOutcome:
        names = kube_packages(components)
        self.repair(ctx)
        current = self.installed_packages(ctx, names, refuse_twice=True)
        if all(p is not None and p.version == version for p in current.values()):
            return StepOutcome(ALREADY_DONE, f"{', '.join(names)} already at {version.plain}")
        self.ensure_source(ctx, version.minor_version)
        pins = {name: _pin(version, package) for name in names}
        if download_only:
            ctx.run(self.bound(ctx).install_command(pins, download_only=True), "download packages")
            return StepOutcome(DONE, f"downloaded {', '.join(names)} {package}", ctx.output())
        ctx.run(self.unhold(*names), "unhold packages")
        ctx.run(self.bound(ctx).install_command(pins, download_only=False), f"install {', '.join(names)}")
        ctx.run(self.hold(*names), "hold packages")
        after = self.installed_packages(ctx, names, refuse_twice=True)
        wrong = [name for name, p in after.items() if p is None or p.version != version]
        if wrong:
            raise PermanentError(f"{', '.join(wrong)} not at {version.plain} after installing")
        return StepOutcome(DONE, f"installed {', '.join(names)} {package}", ctx.output())

    def restart_kubelet(self, ctx: HostContext, version: KubeVersion) -> StepOutcome:
        return systemd.restart_kubelet(ctx, version)


def installed_twice(packages: tuple[str, ...], printed: list[tuple[str, str]]) -> dict[str, tuple[list[str], list[str]]]:
    """package -> (every version printed for it, all but the newest), for each of `packages`
    printed more than once. The second list is empty when a version is not a Kubernetes package
    version or one version is printed twice (two architectures, a forced reinstall): then which
    entry to erase is not known."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for name in packages:
        versions = [version for package, version in printed if package == name]
        if len(versions) < 2:
            continue
        if len(set(versions)) < len(versions):
            found[name] = (versions, [])
            continue
        try:
            parsed = [parse_package_version(version) for version in versions]
        except ValueError:
            found[name] = (versions, [])
            continue
        newest = max(parsed, key=lambda package: package.version)
        found[name] = (versions, [p.raw for p in parsed if p is not newest])
    return found


def unambiguous_versions(packages: tuple[str, ...], printed: list[tuple[str, str]]) -> dict[str, str]:
    """package -> version, for each of `packages` printed exactly once (two versions of one
    package installed side by side say nothing about which one runs)."""
    versions: dict[str, list[str]] = {}
    for name, version in printed:
        if name in packages:
            versions.setdefault(name, []).append(version)
    return {name: found[0] for name, found in versions.items() if len(found) == 1}


def _read(path: Path) -> str:
    """A repository file's text, "" if there is none; bytes that are not UTF-8 are kept as they
    are, to be written back unchanged."""
    if not path.exists():
        return ""
    if not path.is_file():
        raise PermanentError(f"{path} is not a regular file: the repository configuration cannot be "
                             "read or written there; move it aside and retry")
    try:
        return path.read_text(errors="surrogateescape")
    except OSError as error:
        raise PermanentError(f"cannot read {path}: {error.strerror or error}") from None


def _pin(version: KubeVersion, package: str) -> PackageVersion:
    pinned = parse_package_version(package)
    if pinned.version != version:
        raise PermanentError(f"package {package} is not version {version.plain}")
    return pinned

