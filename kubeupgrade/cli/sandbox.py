"""`kubeupgrade sandbox ...`: create, inspect, break and remove sandbox clusters."""

from __future__ import annotations

import json

import click

from kubeupgrade.errors import RuntimeFailure
from kubeupgrade.sandbox.faults import FaultKind

DIR = click.option("--dir", "directory", required=True, metavar="DIR",
                   help="the sandbox directory")


def _node_table(sandbox) -> str:  # type: ignore[no-untyped-def]
    rows = sandbox.node_rows()
    width = max(len(r.name) for r in rows)
    lines = [f"{'NAME':<{width}}  {'ROLE':<13}  {'OS':<4}  {'STATUS':<25}  VERSION"]
    lines += [f"{r.name:<{width}}  {r.role:<13}  {r.os:<4}  {r.status:<25}  {r.version}" for r in rows]
    return "\n".join(lines)


@click.group()
def sandbox() -> None:
    """A simulated kubeadm cluster (API server + host binaries) to rehearse upgrades on."""


@sandbox.command()
@DIR
@click.option("--control-planes", default=1, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--version", "version", default="1.30.4", show_default=True,
              help="the cluster's starting Kubernetes version")
@click.option("--os", "os_family", default="apt", show_default=True,
              type=click.Choice(["apt", "dnf", "dnf5", "yum", "windows", "mixed"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--time-scale", default=0.01, show_default=True, type=float,
              help="multiplies every simulated duration (1 = real-world timings)")
@click.option("--jitter", default=0.0, show_default=True, type=float,
              help="log-normal spread of durations, for benchmarks")
@click.option("--name", default="sandbox", show_default=True,
              help="the cluster's name (kubeadm clusterName); campaigns name it in `cluster:`")
def up(directory: str, control_planes: int, workers: int, version: str, os_family: str,
       seed: int, time_scale: float, jitter: float, name: str) -> None:
    """Create a sandbox cluster and start its API server in the background."""
    from kubeupgrade.sandbox.manager import Sandbox

    box, created = Sandbox.up(directory, control_planes=control_planes, workers=workers,
                              version=version, os_family=os_family, seed=seed,
                              time_scale=time_scale, jitter=jitter, name=name)
    if not created:
        click.echo(f"sandbox in {box.paths.root} is already up (API server pid {box.api_pid()}); "
                   "nothing changed", err=True)
    click.echo(f"kubeconfig: {box.kubeconfig}")
    click.echo(f"API server: {box.server} (pid {box.api_pid()})")
    click.echo(_node_table(box))


@sandbox.command()
@DIR
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def status(directory: str, output: str) -> None:
    """Show the sandbox's API server and nodes."""
    from kubeupgrade.sandbox.manager import Sandbox

    box = Sandbox(directory)
    pid = box.api_pid()
    if output == "json":
        rows = [r.__dict__ for r in box.node_rows()] if pid else []
        click.echo(json.dumps({"directory": str(box.paths.root), "apiserver_pid": pid,
                               "server": box.server, "kubeconfig": str(box.kubeconfig),
                               "nodes": rows, "faults": [f.__dict__ for f in box.faults()]}, indent=2))
        if pid is None:
            raise RuntimeFailure(f"the sandbox API server in {box.paths.root} is not running")
        return
    if pid is None:
        raise RuntimeFailure(f"the sandbox API server in {box.paths.root} is not running; "
                             f"start it with `kubeupgrade sandbox start --dir {box.paths.root}`")
    click.echo(f"API server: {box.server} (pid {pid})\nkubeconfig: {box.kubeconfig}")
    click.echo(_node_table(box))
    faults = box.faults()
    if faults:
        click.echo(f"faults: {len(faults)} active (`kubeupgrade sandbox fault list --dir {directory}`)")


@sandbox.command()
@DIR
def start(directory: str) -> None:
    """Start the API server of an existing sandbox (after `stop` or a crash)."""
    from kubeupgrade.sandbox.manager import Sandbox

    box = Sandbox(directory)
    click.echo(f"API server: {box.server} (pid {box.start_api()})")


@sandbox.command()
@DIR
def stop(directory: str) -> None:
    """Stop the API server, keeping the sandbox's state."""
    from kubeupgrade.sandbox.manager import Sandbox

    click.echo("stopped" if Sandbox(directory).stop_api() else "was not running")


@sandbox.command()
@DIR
@click.option("--purge", is_flag=True, help="also delete the sandbox directory")
def down(directory: str, purge: bool) -> None:
    """Stop every process the sandbox started (by pid)."""
    from kubeupgrade.sandbox.manager import Sandbox

    stopped = Sandbox(directory).down(purge=purge)
    click.echo(f"stopped {len(stopped)} process(es)" + (f": {', '.join(map(str, stopped))}" if stopped else ""))


@sandbox.group()
def fault() -> None:
    """Inject, list and clear faults."""


@fault.command("add")
@DIR
@click.option("--kind", required=True,
              type=click.Choice(FaultKind.ALL))
@click.option("--node", default="*", show_default=True, help="a node name, or * for all")
@click.option("--command", "command", default="", help='argv prefix, e.g. "kubeadm upgrade apply"; '
              'for api-slow the request\'s method and path prefix, e.g. "GET /api/v1/nodes"; '
              'for static-pod-stuck the component, e.g. etcd')
@click.option("--count", type=int, default=None, help="how many runs it hits (default 1; "
              "conditions last until cleared)")
@click.option("--seconds", type=float, default=0.0, help="for hang and api-slow")
@click.option("--exit-code", type=int, default=1, show_default=True, help="for fail")
@click.option("--package", default="", help="for missing-package: kubelet or kubelet=1.31.2")
@click.option("--point", default="", help="for crash: where the command dies, a part of its crash "
              'point\'s description, e.g. "configuring kubelet" (default: its first point)')
def fault_add(directory: str, kind: str, node: str, command: str, count: int | None,
              seconds: float, exit_code: int, package: str, point: str) -> None:
    """Add a fault; prints its id."""
    from kubeupgrade.sandbox.manager import Sandbox

    added = Sandbox(directory).add_fault(kind, node=node, command=command, count=count,
                                         seconds=seconds, exit_code=exit_code, package=package,
                                         point=point)
    click.echo(added.id)


@fault.command("list")
@DIR
def fault_list(directory: str) -> None:
    """List active faults."""
    from kubeupgrade.sandbox.manager import Sandbox

    for item in Sandbox(directory).faults():
        count = "until cleared" if item.count is None else f"{item.count} left"
        what = item.command or item.package or "-"
        if item.point:
            what += f" at {item.point!r}"
        click.echo(f"{item.id}  {item.kind:<16} node={item.node:<12} {what}  ({count})")


@fault.command("clear")
@DIR
@click.option("--id", "fault_id", default=None, help="one fault; default: all")
def fault_clear(directory: str, fault_id: str | None) -> None:
    """Clear one fault or all."""
    from kubeupgrade.sandbox.manager import Sandbox

    click.echo(f"cleared {Sandbox(directory).clear_faults(fault_id)}")


@fault.command("api-down")
@DIR
@click.option("--seconds", type=float, required=True)
def fault_api_down(directory: str, seconds: float) -> None:
    """Make the API server unreachable for SECONDS, then bring it back."""
    from kubeupgrade.sandbox.manager import Sandbox

    Sandbox(directory).api_down(seconds)
    click.echo(f"API server down for {seconds:g}s")
