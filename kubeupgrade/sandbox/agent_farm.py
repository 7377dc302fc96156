"""Many sandbox agents in one process, for measuring the engine at thousands of nodes.

    python -m kubeupgrade.sandbox.agent_farm --dir SANDBOX [--nodes a,b,...] [--concurrency 16]

One Celery worker consumes every served node's own queue (real queues and connections on the
real broker, the real signed messages) and runs each task through the real phase wrapper and
host steps, as the agent of the node whose queue the task came from
(`kubeupgrade.workflow.agent_identity`): a task for another node is refused as misrouted, as a
node's own agent refuses it. What differs from one agent per node:

- The simulated host commands run inside this process (the sandbox's hostbin tools, called
  with buffers for their streams) instead of one Python process per command, which is what a
  sandbox run at scale would otherwise measure. Each still holds its host's lock, writes the
  host's state files and command log, and answers with the same output and exit code. A tool
  that is not simulated (a hook's `/bin/true`) still runs as a process.
- Timeouts are not enforced on in-process commands, and a crash fault ends only the command
  (its log line says so), not the process. Rehearse faults with real agents (`Stack`).
- One liveness thread refreshes every served node's key.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeupgrade.host.executor import Command, CommandResult, LocalExecutor
from kubeupgrade.sandbox.layout import SandboxPaths, load_config
from kubeupgrade.workflow import agent_identity
from kubeupgrade.workflow.agent_identity import AgentIdentity
from kubeupgrade.workflow.names import node_queue

_configs: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}
_configs_lock = threading.Lock()


def _config(sandbox_dir: Path) -> dict[str, Any]:
    """The sandbox's configuration, read again only when its file changed (parsing it for every
    command was a sixth of the farm's time at 1,000 nodes). Read-only: no tool writes it."""
    paths = SandboxPaths(sandbox_dir)
    stat = paths.config.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _configs_lock:
        known = _configs.get(paths.config)
        if known is None or known[0] != stamp:
            known = _configs[paths.config] = (stamp, load_config(paths))
        return known[1]


@dataclass
class InProcessExecutor(LocalExecutor):
    """The node's simulated tools, called in this process while the host lock is held."""

    sandbox_dir: Path = Path()
    node: str = ""

    def _execute(self, command: Command, held: tuple[int, ...]) -> CommandResult:
        from kubeupgrade.sandbox.hostbin.__main__ import TOOLS, main

        tool = command.argv[0]
        if tool not in TOOLS or not any((Path(d) / tool).exists() for d in self.path_prefix):
            return super()._execute(command, held)
        stdout, stderr = io.StringIO(), io.StringIO()
        started = time.monotonic()
        code = main(["--dir", str(self.sandbox_dir), "--node", self.node, *command.argv],
                    stdin=io.StringIO(command.stdin), stdout=stdout, stderr=stderr,
                    config=_config(self.sandbox_dir))
        return CommandResult(command, code, stdout.getvalue(), stderr.getvalue(),
                             time.monotonic() - started)


def identities(sandbox_dir: Path, nodes: Sequence[str] | None = None) -> dict[str, AgentIdentity]:
    """Queue name -> the identity of the node it belongs to, for the nodes served."""
    paths = SandboxPaths(sandbox_dir)
    specs = {spec["name"]: spec for spec in load_config(paths)["nodes"]}
    unknown = sorted(set(nodes or ()) - set(specs))
    if unknown:
        from kubeupgrade.errors import InvalidInput

        raise InvalidInput(f"--nodes: not in the sandbox at {sandbox_dir}: {', '.join(unknown)}")
    served: dict[str, AgentIdentity] = {}
    for name in nodes or list(specs):
        bin_dir = (str(paths.node_bin(name)),)

        def executor(lock_file: Path, name: str = name, bin_dir: tuple[str, ...] = bin_dir) -> InProcessExecutor:
            return InProcessExecutor(bin_dir, lock_file=lock_file, sandbox_dir=sandbox_dir, node=name)

        served[node_queue(name)] = AgentIdentity(node=name, host_root=paths.node_root(name), path=bin_dir,
                                                 os_family=specs[name]["os"], executor=executor)
    return served


def run_farm(sandbox_dir: Path, broker: str, nodes: Sequence[str] | None = None, *,
             concurrency: int = 16, loglevel: str = "WARNING", name: str = "farm") -> None:
    from celery.signals import task_postrun, task_prerun

    from kubeupgrade.workflow.app import use_broker
    from kubeupgrade.workflow.liveness import AgentHeartbeat
    from kubeupgrade.workflow.record import CampaignStore
    from kubeupgrade.workflow.runners import (
        agent_description,
        beat_while_serving,
        require_message_identity,
        run_worker,
    )

    served = identities(sandbox_dir, nodes)
    if any(identity.os_family == "windows" for identity in served.values()):
        from kubeupgrade.errors import InvalidInput

        raise InvalidInput("the agent farm runs Linux nodes only (Windows binaries run by path)")
    signed = require_message_identity(unsigned_messages=False) is not None
    app = use_broker(broker)
    app.conf.include = ["workers.node_tasks"]
    app.conf.worker_enable_remote_control = False
    beat_while_serving(AgentHeartbeat(CampaignStore.from_url(broker).redis,
                                      [identity.node or "" for identity in served.values()],
                                      describe=lambda: {**agent_description(), "signed_messages": signed,
                                                        "farm": name}))

    @task_prerun.connect(weak=False)
    def become(task: object = None, **_: object) -> None:
        queue = (getattr(getattr(task, "request", None), "delivery_info", None) or {}).get("routing_key")
        agent_identity.serve(served.get(queue or "", AgentIdentity(node=None, host_root=Path("/nonexistent"))))

    @task_postrun.connect(weak=False)
    def leave(**_: object) -> None:
        agent_identity.serve(None)

    from kubeupgrade.workflow.thread_pool import POOL_NAME

    app.conf.worker_pool = POOL_NAME  # threads, each end of a task reported (thread_pool.py)
    run_worker(app, ["worker", "-Q", ",".join(served), "-n", f"{name}@%h",
                     "-c", str(concurrency), "--prefetch-multiplier", "1", "-E", "--without-gossip",
                     "--without-mingle", "--without-heartbeat", "-l", loglevel])


def main(argv: Sequence[str] | None = None) -> int:
    from kubeupgrade.errors import run_entry_point

    options = argparse.ArgumentParser(prog="python -m kubeupgrade.sandbox.agent_farm",
                                      description="Serve many sandbox nodes' queues from one process.")
    options.add_argument("--dir", required=True, type=Path, help="the sandbox directory")
    options.add_argument("--nodes", default="", help="comma-separated node names [default: all]")
    options.add_argument("--concurrency", type=int, default=16)
    options.add_argument("--name", default="farm")
    options.add_argument("--loglevel", default="WARNING")
    args = options.parse_args(argv)
    broker = os.environ.get("KUBEUPGRADE_BROKER", "redis://127.0.0.1:6379/0")
    nodes = [n for n in args.nodes.split(",") if n] or None
    return run_entry_point(lambda: run_farm(args.dir.resolve(), broker, nodes, concurrency=args.concurrency,
                                            loglevel=args.loglevel, name=args.name))


if __name__ == "__main__":
    sys.exit(main())
