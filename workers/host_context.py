"""How an agent reaches its host: the executor, the host root and the package manager family."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kubeupgrade.host.executor import LocalExecutor
from kubeupgrade.host.steps import HostContext
from kubeupgrade.model.campaign import OsFamily


def path_prefix() -> tuple[str, ...]:
    value = os.environ.get("KUBEUPGRADE_PATH", "")
    return tuple(p for p in value.split(os.pathsep) if p)


def detect_family() -> OsFamily:
    """The host's package manager: apt-get first, then dnf, then yum, on the agent's PATH."""
    forced = os.environ.get("KUBEUPGRADE_OS")
    if forced:
        return OsFamily(forced)
    # The --path directories are the host's own tools (the sandbox's): they decide first.
    for search in (os.pathsep.join(path_prefix()), os.environ.get("PATH", "")):
        for tool, family in (("apt-get", OsFamily.APT), ("dnf", OsFamily.DNF), ("yum", OsFamily.YUM)):
            if search and shutil.which(tool, path=search):
                return family
    raise RuntimeError("no apt-get, dnf or yum on PATH: cannot manage Kubernetes packages here")


# One lock per host for every command the agent runs (see kubeupgrade.host.executor).
HOST_LOCK = "var/lib/kubeupgrade/host.lock"


def host_context(campaign: str = "", hop: int = 0) -> HostContext:
    root = Path(os.environ.get("KUBEUPGRADE_HOST_ROOT", "/"))
    return HostContext(
        executor=LocalExecutor(path_prefix(), lock_file=root / HOST_LOCK),
        root=root,
        family=detect_family(),
        campaign=campaign,
        hop=hop,
    )
