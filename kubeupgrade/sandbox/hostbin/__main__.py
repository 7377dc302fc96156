"""Entry point of every simulated host binary: `python -m kubeupgrade.sandbox.hostbin --dir DIR
--node NODE TOOL ARGS...`, written into each node's bin directory by `hosts.write_shims`.

It applies injected faults that fit any command (fail, hang, crash), runs the tool, and appends
the run to the node's command log.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kubeupgrade.sandbox.faults import FaultKind
from kubeupgrade.sandbox.hostbin import etcdctl, kubeadm, packages, services
from kubeupgrade.sandbox.hostbin.context import ExitCommand, Host
from kubeupgrade.sandbox.layout import SandboxPaths

TOOLS = {
    "kubeadm": kubeadm.main,
    "etcdctl": etcdctl.etcdctl,
    "kubelet": services.kubelet,
    "systemctl": services.systemctl,
    "swapon": services.swapon,
    "killall": services.killall,
    "apt-get": packages.apt_get,
    "apt-mark": packages.apt_mark,
    "apt-cache": packages.apt_cache,
    "dpkg": packages.dpkg,
    "dpkg-query": packages.dpkg_query,
    "dnf": packages.dnf,
    "yum": packages.dnf,
    "rpm": packages.rpm,
}


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[0] != "--dir" or argv[2] != "--node":
        sys.stderr.write("usage: hostbin --dir DIR --node NODE TOOL [ARGS...]\n")
        return 2
    paths, node, tool, args = SandboxPaths(Path(argv[1])), argv[3], argv[4], argv[5:]
    if tool not in TOOLS:
        sys.stderr.write(f"{tool}: command not found\n")
        return 127
    host = Host(paths, node, [tool, *args])
    code = 1
    try:
        fault = host.take_fault(FaultKind.FAIL, FaultKind.HANG, FaultKind.CRASH)
        if fault is not None and fault.kind == FaultKind.HANG.value:
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == FaultKind.FAIL.value:
            host.err(f"{tool}: simulated failure (sandbox fault {fault.id})")
            code = fault.exit_code
            return code
        elif fault is not None:
            host.crash = fault
        code = TOOLS[tool](host, args) or 0
    except ExitCommand as done:
        code = done.code
    finally:
        host.log(code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
