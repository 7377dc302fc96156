"""How an agent reaches its host: the executor, the host root and the host's platform, for the
node it serves (kubeupgrade.workflow.agent_identity)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from kubeupgrade.errors import InvalidInput
from kubeupgrade.host.executor import Executor, LocalExecutor
from kubeupgrade.host.platforms import detect
from kubeupgrade.host.steps import HostContext
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.workflow.agent_identity import AgentIdentity, current


def detect_family(identity: AgentIdentity | None = None) -> OsFamily:
    """The host's platform: Windows, else the one whose tools are on the agent's PATH
    (kubeupgrade.host.platforms.detect). `--os` overrides; a host with none is refused."""
    identity = identity or current()
    if identity.os_family:
        return OsFamily(identity.os_family)
    if sys.platform == "win32":
        return OsFamily.WINDOWS
    # The --path directories are the host's own tools (the sandbox's): they decide first.
    found = detect([os.pathsep.join(identity.path), os.environ.get("PATH", "")])
    if found is not None:
        return found
    raise InvalidInput("no apt-get, dnf or yum on PATH and not Windows: cannot upgrade this host "
                       "(name its platform with `kubeupgrade agent --os`)")


# One lock per host for every command the agent runs (see kubeupgrade.host.executor).
HOST_LOCK = "var/lib/kubeupgrade/host.lock"


def host_context(campaign: str = "", hop: int = 0, fence: Callable[[], None] | None = None) -> HostContext:
    identity = current()
    lock_file = identity.host_root / HOST_LOCK
    executor: Executor = (identity.executor(lock_file) if identity.executor is not None
                          else LocalExecutor(identity.path, lock_file=lock_file))
    return HostContext(executor=executor, root=identity.host_root, family=detect_family(identity),
                       campaign=campaign, hop=hop, fence=fence)
