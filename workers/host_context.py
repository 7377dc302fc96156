"""How an agent reaches its host: the executor, the host root and the host's platform."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kubeupgrade.errors import InvalidInput
from kubeupgrade.host.executor import LocalExecutor
from kubeupgrade.host.platforms import detect
from kubeupgrade.host.steps import HostContext
from kubeupgrade.model.campaign import OsFamily


def path_prefix() -> tuple[str, ...]:
    value = os.environ.get("KUBEUPGRADE_PATH", "")
    return tuple(p for p in value.split(os.pathsep) if p)


def detect_family() -> OsFamily:
    """The host's platform: Windows, else the one whose tools are on the agent's PATH
    (kubeupgrade.host.platforms.detect). `--os` overrides; a host with none is refused."""
    forced = os.environ.get("KUBEUPGRADE_OS")
    if forced:
        return OsFamily(forced)
    if sys.platform == "win32":
        return OsFamily.WINDOWS
    # The --path directories are the host's own tools (the sandbox's): they decide first.
    found = detect([os.pathsep.join(path_prefix()), os.environ.get("PATH", "")])
    if found is not None:
        return found
    raise InvalidInput("no apt-get, dnf or yum on PATH and not Windows: cannot upgrade this host "
                       "(name its platform with `kubeupgrade agent --os`)")


# One lock per host for every command the agent runs (see kubeupgrade.host.executor).
HOST_LOCK = "var/lib/kubeupgrade/host.lock"


def host_context(campaign: str = "", hop: int = 0) -> HostContext:
    root = Path(os.environ.get("KUBEUPGRADE_HOST_ROOT", "C:\\" if sys.platform == "win32" else "/"))
    return HostContext(
        executor=LocalExecutor(path_prefix(), lock_file=root / HOST_LOCK),
        root=root,
        family=detect_family(),
        campaign=campaign,
        hop=hop,
    )
