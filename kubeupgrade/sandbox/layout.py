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

import os

# Neither `typing` nor `pathlib` is imported at run time: every simulated command imports this
# module, and pathlib (with the `re` and `enum` it imports) was a third of such a command's start.
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# Files on a simulated host (under nodes/<name>/root/) that its simulated binaries share. Here,
# not in objects or hosts, so a simulated command imports only what it runs (each one is a new
# Python process: see hostbin).
KUBELET_STATE = "var/lib/sandbox/kubelet.json"
PACKAGE_STATE = "var/lib/sandbox/packages.json"
APT_SOURCE = "etc/apt/sources.list.d/kubernetes.list"
YUM_REPO = "etc/yum.repos.d/kubernetes.repo"
YUM_REPOS = "etc/yum.repos.d"
APT_LISTS = "var/lib/apt/lists/sandbox-kubernetes.json"
STATIC_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

# The layout under the sandbox directory, as relative strings: SandboxPaths joins them onto a
# pathlib root for the sandbox's own code; a simulated command joins them onto a plain string.
CONFIG_FILE = "sandbox.json"
FAULTS_FILE = "faults.json"
EVENTS_DIR = "events"


def node_entry(node: str, entry: str) -> str:
    """A node's `root` (its filesystem), `bin` (its binaries) or `commands.jsonl` (its log)."""
    return f"nodes/{node}/{entry}"


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
        return self.root / CONFIG_FILE

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def faults(self) -> Path:
        return self.root / FAULTS_FILE

    @property
    def events(self) -> Path:
        return self.root / EVENTS_DIR

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
        return self.root / node_entry(node, "root")

    def node_bin(self, node: str) -> Path:
        return self.root / node_entry(node, "bin")

    def command_log(self, node: str) -> Path:
        return self.root / node_entry(node, "commands.jsonl")


def load_config(paths: SandboxPaths) -> dict[str, Any]:
    import json

    return json.loads(paths.config.read_text())


def write_json_atomically(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    import json

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=indent, separators=None if indent else (",", ":")))
    os.replace(temporary, path)


def notify_kubelet_event(sandbox_dir: str, node: str) -> None:
    """Tell the API server's kubelet simulation that this node's host state changed.

    The file stays until the API server processes it, so news survives an API-server outage,
    as a real kubelet keeps retrying its status updates.
    """
    events = os.path.join(sandbox_dir, EVENTS_DIR)
    os.makedirs(events, exist_ok=True)
    with open(os.path.join(events, node), "a"):
        pass  # the file's existence is the news; the API server reads its name
