"""The `kubeupgrade` command's entry point: the CLI, or one line saying what to install when the
controller's dependencies are missing (a node installs the package without the extra: its
command is `kubeupgrade-agent`)."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.version_info < (3, 11):
        print(f"error: the kubeupgrade CLI and controller need Python 3.11 or newer (this is "
              f"{sys.version_info[0]}.{sys.version_info[1]}); on a node, the agent is "
              "`kubeupgrade-agent`", file=sys.stderr)
        return 2
    try:
        from kubeupgrade.cli.main import main as cli
    except ImportError as missing:
        print(f"error: the kubeupgrade CLI needs the controller's dependencies ({missing.name} is "
              "missing): pip install 'kubeupgrade[controller]' (on a node, the agent is "
              "`kubeupgrade-agent`)", file=sys.stderr)
        return 2
    return cli()
