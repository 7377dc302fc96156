"""How a simulated binary starts, and how a simulated Windows binary says what it is.

Both the shims in a node's bin directory (`hosts.write_shims`) and the Windows binaries that the
simulated dl.k8s.io serves (`releases.windows_binary`) are small shell scripts that exec the
interpreter on `hostbin`'s entry. Every simulated command is a new process, so they start it the
cheapest way found: `-S` (no site initialisation, most of it the editable install's finder;
the search path it would have built is given instead) and `-c` (not `-m`, which imports runpy).
Imported by every Windows binary's run: plain strings and `os` only.
"""

from __future__ import annotations

import os
import sys

ENTRY = "import sys; from kubeupgrade.sandbox.hostbin.__main__ import main; sys.exit(main(sys.argv[1:]))"

# The first lines of a sandbox Windows binary name it: "<header><component>.exe <tag> windows/amd64".
EXE_HEADER = "# kubeupgrade sandbox release: "


def exec_line() -> str:
    """The shell line that runs hostbin's entry with the arguments that follow it: this checkout
    (or installation) first on the search path, then the interpreter's site-packages, then
    whatever PYTHONPATH the caller has."""
    import sysconfig  # only where binaries are written or served, never in a command's start

    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.realpath(__file__)))))
    # The same line from every process: a Windows binary's bytes are checked against what the
    # simulated dl.k8s.io serves, and curl.exe serves them from a process started with -S,
    # where sys.prefix is not the virtual environment's (site sets that): so the environment
    # is found as site finds it, by the pyvenv.cfg beside the interpreter's directory.
    environment = os.path.dirname(os.path.dirname(sys.executable))
    if not os.path.exists(os.path.join(environment, "pyvenv.cfg")):
        environment = sys.prefix
    paths = sysconfig.get_paths(vars={"base": environment, "platbase": environment})
    search_path = ":".join(dict.fromkeys([package_root, paths["purelib"], paths["platlib"]]))
    return (f"PYTHONPATH='{search_path}'${{PYTHONPATH:+:$PYTHONPATH}} "
            f"exec '{sys.executable}' -S -c '{ENTRY}'")


def exe_identity(content: bytes) -> tuple[str, str] | None:
    """(component, version tag) of a sandbox Windows binary, None for anything else."""
    for line in content.decode(errors="replace").splitlines()[:3]:
        if line.startswith(EXE_HEADER):
            name, tag, _ = line.removeprefix(EXE_HEADER).split(" ", 2)
            return name.removesuffix(".exe"), tag
    return None
