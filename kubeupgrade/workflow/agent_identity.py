"""Whom an agent serves: the node, its host root, the directories searched first for host
binaries, and how commands reach the host.

A real agent serves one node for its whole life: its options go into the environment (which
its prefork child inherits) and `current()` reads them there. The sandbox's agent farm
(`kubeupgrade.sandbox.agent_farm`) serves many simulated nodes from one process; it sets the
identity of the node whose queue a task came from, in the thread that runs the task, for the
task's duration (`serving`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubeupgrade.host.executor import Executor

# Makes the executor for one task's host context from the host lock file; None: subprocesses.
ExecutorFactory = Callable[[Path], Executor]

NODE_ENV = "KUBEUPGRADE_NODE"
HOST_ROOT_ENV = "KUBEUPGRADE_HOST_ROOT"
PATH_ENV = "KUBEUPGRADE_PATH"
OS_ENV = "KUBEUPGRADE_OS"


@dataclass(frozen=True)
class AgentIdentity:
    node: str | None
    host_root: Path
    path: tuple[str, ...] = ()
    os_family: str | None = None  # None: detected from the tools on PATH
    executor: ExecutorFactory | None = None


def from_environment() -> AgentIdentity:
    default_root = "C:\\" if sys.platform == "win32" else "/"
    return AgentIdentity(
        node=os.environ.get(NODE_ENV) or None,
        host_root=Path(os.environ.get(HOST_ROOT_ENV) or default_root),
        path=tuple(p for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p),
        os_family=os.environ.get(OS_ENV) or None,
    )


_serving = threading.local()


def current() -> AgentIdentity:
    """The identity set for this thread's task, else the process's (its environment)."""
    identity = getattr(_serving, "identity", None)
    return identity if identity is not None else from_environment()


def serve(identity: AgentIdentity | None) -> None:
    """From now on this thread acts for `identity` (None: for the process's own again)."""
    _serving.identity = identity


@contextmanager
def serving(identity: AgentIdentity) -> Iterator[None]:
    previous = getattr(_serving, "identity", None)
    serve(identity)
    try:
        yield
    finally:
        serve(previous)


# Where the kubelet (its cAdvisor) reads the machine id it reports as the Node's
# status.nodeInfo.machineID, in this order.
MACHINE_ID_FILES = ("etc/machine-id", "var/lib/dbus/machine-id")


def host_machine_id(identity: AgentIdentity) -> str | None:
    """The machine id of the host the agent acts on; None where it has none to read (Windows
    keeps its id in the registry)."""
    for name in MACHINE_ID_FILES:
        try:
            found = (identity.host_root / name).read_text(errors="replace").strip()
        except OSError:
            continue
        if found:
            return found
    return None
