"""Where a sandbox keeps its files, and its configuration file (`sandbox.json`).

DIR/
  sandbox.json        configuration: nodes, port, tokens, timing, seed
  state.json          the API server's objects (survives API-server restarts)
  kubeconfig          admin kubeconfig for kubectl and the kubernetes client
  pki/                the sandbox CA and the API server's certificate (it serves HTTPS)
  faults.json         injected faults (see `faults`)
  events/             one file per node whose kubelet has news for the API server
  apiserver.pid/.log
  nodes/<name>/root/  the host's filesystem: etc/kubernetes, var/lib/kubelet, package state
  nodes/<name>/bin/   the host's simulated binaries (kubeadm, apt-get, systemctl, ...)
  nodes/<name>/commands.jsonl   every command run on the host: argv, start, end, exit code
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# `typing` itself is not imported at run time (it is a tenth of a simulated command's start);
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Files on a simulated host (under nodes/<name>/root/) that its simulated binaries share. Here,
# not in objects or hosts, so a simulated command imports only what it runs (each one is a new
# Python process: see hostbin).
KUBELET_STATE = "var/lib/sandbox/kubelet.json"
PACKAGE_STATE = "var/lib/sandbox/packages.json"
APT_SOURCE = "etc/apt/sources.list.d/kubernetes.list"
YUM_REPO = "etc/yum.repos.d/kubernetes.repo"
APT_LISTS = "var/lib/apt/lists/sandbox-kubernetes.json"
STATIC_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class SandboxPaths:
    # A plain class, not a dataclass: every simulated command imports this module (see hostbin).
    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SandboxPaths) and self.root == other.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"SandboxPaths(root={self.root!r})"

    @property
    def config(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def faults(self) -> Path:
        return self.root / "faults.json"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def apiserver_pid(self) -> Path:
        return self.root / "apiserver.pid"

    @property
    def apiserver_log(self) -> Path:
        return self.root / "apiserver.log"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def node_root(self, node: str) -> Path:
        return self.node_dir(node) / "root"

    def node_bin(self, node: str) -> Path:
        return self.node_dir(node) / "bin"

    def command_log(self, node: str) -> Path:
        return self.node_dir(node) / "commands.jsonl"


def load_config(paths: SandboxPaths) -> dict[str, Any]:
    return json.loads(paths.config.read_text())


def write_json_atomically(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=indent, separators=None if indent else (",", ":")))
    os.replace(temporary, path)


def notify_kubelet_event(paths: SandboxPaths, node: str) -> None:
    """Tell the API server's kubelet simulation that this node's host state changed.

    The file stays until the API server processes it, so news survives an API-server outage,
    as a real kubelet keeps retrying its status updates.
    """
    paths.events.mkdir(parents=True, exist_ok=True)
    (paths.events / node).touch()
