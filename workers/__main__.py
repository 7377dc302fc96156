"""`kubeupgrade-agent` (or `python -m workers`): the node agent's own entry point.

It imports only the agent's closure (Celery, redis, packaging, cryptography and the host
phases), so a node needs neither the controller's dependencies (kubernetes client, Flower,
Fabric, click's CLI, rich) nor Python 3.11: the agent runs on 3.9, the Python of RHEL 9.
`kubeupgrade agent` on a controller host takes the same options and lands in `start` below.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def start(node: str, broker: str, *, host_root: str, path: str = "", os_family: str | None = None,
          trusted: str | None = None, loglevel: str = "INFO", unsigned_messages: bool = False,
          hooks_allowlist: str | None = None) -> None:
    """Check the arguments, then run the agent until it is stopped."""
    from kubeupgrade.errors import InvalidInput
    from kubeupgrade.security.authorize import TRUSTED_ENV
    from kubeupgrade.workflow.names import valid_node_name
    from kubeupgrade.workflow.runners import run_agent

    if not valid_node_name(node):
        raise InvalidInput(f"--node {node!r} is not a valid node name")
    if trusted:
        os.environ[TRUSTED_ENV] = os.path.abspath(trusted)
    if hooks_allowlist:
        from pathlib import Path

        from kubeupgrade.security.hooks import ALLOWLIST_ENV, load_allowlist

        load_allowlist(Path(hooks_allowlist))  # a file it cannot read stops it now, not at a hook
        os.environ[ALLOWLIST_ENV] = os.path.abspath(hooks_allowlist)
    run_agent(node, broker, host_root=host_root, path=path, os_family=os_family, loglevel=loglevel,
              unsigned_messages=unsigned_messages)


def parser() -> argparse.ArgumentParser:
    from kubeupgrade.model.campaign import OsFamily

    options = argparse.ArgumentParser(prog="kubeupgrade-agent", description="Run the node-local "
                                      "agent for NODE (one Celery worker on its own queue).")
    options.add_argument("--node", required=True, help="this host's Kubernetes node name")
    options.add_argument("--broker", default=os.environ.get("KUBEUPGRADE_BROKER", DEFAULT_BROKER),
                         help="Redis URL [default: $KUBEUPGRADE_BROKER, then %(default)s]")
    options.add_argument("--host-root", default="C:\\" if sys.platform == "win32" else "/",
                         help="the host filesystem root [default: %(default)s]")
    options.add_argument("--path", default="", help="directories searched first for host binaries")
    options.add_argument("--os", dest="os_family", choices=[f.value for f in OsFamily], default=None,
                         help="host platform (default: detected)")
    options.add_argument("--trusted-keys", dest="trusted", default=None, metavar="DIR",
                         help="operator public keys (*.pub) whose signed campaigns may run here "
                              "[default: /etc/kubeupgrade/trusted under --host-root]")
    options.add_argument("--hooks-allowlist", default=None, metavar="FILE",
                         help="run only hooks whose argv begins with a prefix listed in FILE")
    options.add_argument("--loglevel", default="INFO")
    options.add_argument("--unsigned-messages", action="store_true",
                         help="run without message signing (not for production)")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    from kubeupgrade.errors import run_entry_point

    args = parser().parse_args(argv)
    return run_entry_point(lambda: start(
        args.node, args.broker, host_root=args.host_root, path=args.path, os_family=args.os_family,
        trusted=args.trusted, loglevel=args.loglevel, unsigned_messages=args.unsigned_messages,
        hooks_allowlist=args.hooks_allowlist))


if __name__ == "__main__":
    sys.exit(main())
