"""What a host platform must do for the upgrade: the interface every platform implements.

A platform is how one kind of host gets its Kubernetes binaries and runs its kubelet: apt
(Debian, Ubuntu), rpm (dnf and yum: RHEL, Rocky, Fedora), windows. The generic steps
(`kubeupgrade.host.steps`) call these methods and never look at which platform they have; adding
a platform is one module implementing this class plus its line in the registry (`__init__`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from kubeupgrade.host.context import HostContext, StepOutcome
from kubeupgrade.host.listings import ListedPackage
from kubeupgrade.model.versions import KubeVersion, MinorVersion, VersionSpec


class HostPlatform(ABC):
    name: str  # the host's `os` in facts, campaigns and the sandbox
    marker: str  # a tool on PATH that says a host is of this platform (where it cannot say itself)
    # Output of this platform's tools that means "retrying cannot help" (a version not found).
    refusals: tuple[str, ...] = ()
    # What the node runs from this platform's source, each offered at the version chosen.
    components: tuple[str, ...] = ("kubeadm", "kubelet", "kubectl")

    def kubeadm(self, ctx: HostContext) -> str:
        """How to run kubeadm on this host (argv[0])."""
        return "kubeadm"

    @abstractmethod
    def facts(self, ctx: HostContext) -> dict[str, Any]:
        """What is installed (kubeadm, kubelet, kubectl: version strings or None), where the
        binaries come from (`repository_minor`) and whether swap is on (`swap_on`)."""

    @abstractmethod
    def installed(self, ctx: HostContext, component: str) -> KubeVersion | None:
        """The version of kubeadm, kubelet or kubectl installed on the host, None if absent."""

    @abstractmethod
    def set_source(self, ctx: HostContext, minor: MinorVersion) -> StepOutcome:
        """Point where binaries come from at `minor` (a package repository; nothing to do where
        binaries are downloaded by version)."""

    @abstractmethod
    def restore_source(self, ctx: HostContext, minor: MinorVersion) -> StepOutcome:
        """Put back what `set_source` replaced for this campaign's hop."""

    @abstractmethod
    def offered(self, ctx: HostContext, component: str, target: VersionSpec) -> list[ListedPackage]:
        """The versions of `component` this host can install for `target`, newest first; each
        row's `package` is the string `install` is later given back."""

    def offered_all(self, ctx: HostContext, components: tuple[str, ...],
                    target: VersionSpec) -> dict[str, list[ListedPackage]]:
        """`offered` for each of `components` (a platform whose tool lists several at once asks
        once)."""
        return {name: self.offered(ctx, name, target) for name in components}

    @abstractmethod
    def install(self, ctx: HostContext, version: KubeVersion, package: str,
                components: tuple[str, ...], *, download_only: bool = False) -> StepOutcome:
        """Install `components` at `version` (`package` from `offered`), or with `download_only`
        fetch them ahead of the outage without changing what runs."""

    @abstractmethod
    def restart_kubelet(self, ctx: HostContext, version: KubeVersion) -> StepOutcome:
        """Run the installed kubelet: restart its service and check it runs."""
