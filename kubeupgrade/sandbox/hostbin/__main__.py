"""Entry point of every simulated host binary: `python -m kubeupgrade.sandbox.hostbin --dir DIR
--node NODE TOOL ARGS...`, written into each node's bin directory by `hosts.write_shims`.

It applies injected faults that fit any command (fail, hang, crash), runs the tool, and appends
the run to the node's command log.
"""

from __future__ import annotations

import sys
import time

from kubeupgrade.sandbox.faults import FaultKind
from kubeupgrade.sandbox.hostbin.context import ExitCommand, Host

# `typing` itself is not imported at run time (it is a tenth of a simulated command's start);
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:  # every simulated command is a process: typing is not imported to run one
    from collections.abc import Callable
    from typing import Any, TextIO

# tool -> "module:function"; only the tool run is imported (every simulated command is a process)
TOOLS = {
    "kubeadm": "kubeadm:main",
    "etcdctl": "etcdctl:etcdctl",
    "kubelet": "services:kubelet",
    "systemctl": "services:systemctl",
    "swapon": "services:swapon",
    "killall": "services:killall",
    "apt-get": "packages:apt_get",
    "apt-mark": "packages:apt_mark",
    "apt-cache": "packages:apt_cache",
    "dpkg": "packages:dpkg",
    "dpkg-query": "packages:dpkg_query",
    "dnf": "packages:dnf",
    "yum": "packages:dnf",
    "rpm": "packages:rpm",
    "curl.exe": "windows:curl",
    "sc.exe": "windows:sc",
    "kubeadm.exe": "kubeadm:main",
    "kubelet.exe": "services:kubelet",
}


def _tool(name: str) -> Callable[[Host, list[str]], int]:
    module, _, function = TOOLS[name].partition(":")
    # __import__ rather than importlib, which a command would import for this one call
    found = __import__(f"kubeupgrade.sandbox.hostbin.{module}", fromlist=[function])
    return getattr(found, function)


def _from_binary(argv: list[str]) -> list[str] | None:
    """`--exe PATH ARGS...`: a Windows binary from the simulated dl.k8s.io ran (see
    releases.windows_binary). Its path says which node it is on (DIR/nodes/NODE/root/...), its
    content which version it is."""
    import os

    from kubeupgrade.sandbox.hostbin.launch import exe_identity

    path = os.path.realpath(argv[1])
    parts = path.split(os.sep)
    if "nodes" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("nodes")
    with open(path, "rb") as binary:
        identity = exe_identity(binary.read(4096))  # the header is on its first lines
    if identity is None or at + 2 >= len(parts) or parts[at + 2] != "root":
        return None
    component, tag = identity
    return ["--dir", os.sep.join(parts[:at]) or os.sep, "--node", parts[at + 1], f"{component}.exe",
            f"--exe-version={tag}", *argv[2:]]


def main(argv: list[str], stdin: TextIO | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None, config: dict[str, Any] | None = None) -> int:
    """Run one simulated command; its streams are this process's unless given (the agent farm
    runs commands in its own process and gives buffers, and the sandbox's configuration it
    has read)."""
    if len(argv) >= 2 and argv[0] == "--exe":
        argv = _from_binary(argv) or []
    if len(argv) < 5 or argv[0] != "--dir" or argv[2] != "--node":
        (stderr or sys.stderr).write("usage: hostbin --dir DIR --node NODE TOOL [ARGS...]\n")
        return 2
    sandbox_dir, node, tool, args = argv[1], argv[3], argv[4], argv[5:]
    if tool not in TOOLS:
        (stderr or sys.stderr).write(f"{tool}: command not found\n")
        return 127
    exe_version = ""
    if args and args[0].startswith("--exe-version="):
        exe_version, args = args[0].split("=", 1)[1], args[1:]
    host = Host(sandbox_dir, node, [tool, *args], exe_version=exe_version, stdin=stdin, stdout=stdout,
                stderr=stderr, preloaded=config)
    code = 1
    try:
        fault = host.take_fault(FaultKind.FAIL, FaultKind.HANG, FaultKind.CRASH)
        if fault is not None and fault.kind == FaultKind.HANG:
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == FaultKind.FAIL:
            host.err(f"{tool}: simulated failure (sandbox fault {fault.id})")
            code = fault.exit_code
            return code
        elif fault is not None:
            host.crash = fault
        code = _tool(tool)(host, args) or 0
    except ExitCommand as done:
        code = done.code
    finally:
        for connection in host.connections:
            connection.close()
        if not host.crashed:  # a crash logged itself
            host.log(code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
