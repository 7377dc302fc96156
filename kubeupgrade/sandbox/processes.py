"""What every process the sandbox starts needs: a free local port and an environment in which
`python -m kubeupgrade...` imports this checkout, whether or not it is installed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment plus `extra`, with this checkout first on PYTHONPATH."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it (Linux: read from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return tree


def host_commands(root: Path, node: str) -> dict[int, str]:
    """The simulated host commands running on `node` of the sandbox at `root` now, pid -> argv
    from the tool on (the shims of kubeupgrade.sandbox.hosts exec `... --dir ROOT --node NODE
    TOOL ARGS`): what a fault kills to crash a command at whatever moment it is in."""
    wanted = [b"--dir", str(root).encode(), b"--node", node.encode()]
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        at = next((i for i in range(len(argv)) if argv[i:i + 4] == wanted), None)
        if at is not None:
            found[int(entry.name)] = b" ".join(argv[at + 4:]).decode(errors="replace").strip()
    return found
