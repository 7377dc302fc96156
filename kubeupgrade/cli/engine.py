"""Engine commands: agent, controller, flower, submit, status, retry, abort, list."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from kubeupgrade.cli.render import document
from kubeupgrade.cli.scope import scope_options, with_scope
from kubeupgrade.cli.terminal import printable
from kubeupgrade.errors import InvalidInput, RuntimeFailure
from kubeupgrade.model.campaign import OsFamily

BROKER = click.option("--broker", default=lambda: os.environ.get("KUBEUPGRADE_BROKER",
                                                                 "redis://127.0.0.1:6379/0"),
                      show_default="$KUBEUPGRADE_BROKER or redis://127.0.0.1:6379/0",
                      help="Redis URL (redis:// or rediss:// with a password)")


# How much nicer than the controller's main process its pool processes run. The dispatcher (a
# thread of the main process) decides what every node does next; the pool runs the cluster
# phases it sent. Nicer, the pool lets the decision go first on a busy machine. That was
# measured to help only where the controller has cores of its own, and niceness also yields to
# every other process on the machine (README, Capacity), so the default keeps one priority.
POOL_NICE = 0

UNSIGNED = click.option("--unsigned-messages", "unsigned_messages", is_flag=True,
                        help="run without message signing (not for production: a broker "
                             "credential alone could then queue tasks)")

@click.command()
@click.option("--node", required=True, help="this host's Kubernetes node name")
@BROKER
@click.option("--host-root", default="C:\\" if sys.platform == "win32" else "/", show_default=True,
              help="the host filesystem root")
@click.option("--path", "path", default="", help="directories searched first for host binaries")
@click.option("--os", "os_family", type=click.Choice([f.value for f in OsFamily]), default=None,
              help="host platform (default: detected)")
@click.option("--trusted-keys", "trusted", default=None, metavar="DIR",
              help="operator public keys (*.pub) whose signed campaigns may run here "
                   "[default: /etc/kubeupgrade/trusted under --host-root]")
@click.option("--hooks-allowlist", default=None, metavar="FILE",
              help="run only hooks whose argv begins with a prefix listed in FILE")
@click.option("--loglevel", default="INFO", show_default=True)
@UNSIGNED
def agent(node: str, broker: str, host_root: str, path: str, os_family: str | None,
          trusted: str | None, hooks_allowlist: str | None, loglevel: str, unsigned_messages: bool) -> None:
    """Run the node-local agent for NODE (one Celery worker on its own queue). On nodes,
    `kubeupgrade-agent` takes the same options without the controller's dependencies."""
    from workers.__main__ import start

    start(node, broker, host_root=host_root, path=path, os_family=os_family, trusted=trusted,
          loglevel=loglevel, unsigned_messages=unsigned_messages, hooks_allowlist=hooks_allowlist)


def default_kubeconfig() -> str | None:
    """kubectl's order: the first file of $KUBECONFIG, else ~/.kube/config (if there)."""
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed[0]
    home = os.path.expanduser("~/.kube/config")
    return home if os.path.exists(home) else None


@click.command()
@click.option("--kubeconfig", default=default_kubeconfig, type=click.Path(exists=True, dir_okay=False),
              show_default="$KUBECONFIG, then ~/.kube/config")
@BROKER
@click.option("--concurrency", default=8, show_default=True, type=int)
@click.option("--pool-nice", "pool_nice", default=POOL_NICE, show_default=True, type=click.IntRange(0, 19),
              help="run the pool processes (the cluster phases) this much nicer than the dispatcher, "
              "so it decides first when the machine is busy (see README, Capacity)")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--metrics-port", "metrics_port", default=0, type=click.IntRange(0, 65535),
              help="serve Prometheus metrics on this port (basic auth from $KUBEUPGRADE_METRICS_AUTH)")
@click.option("--metrics-address", "metrics_address", default="127.0.0.1", show_default=True)
@click.option("--retention-days", "retention_days", default=30.0, show_default=True,
              type=click.FloatRange(min=0), help="archive and remove ended campaigns unchanged this "
              "long (0: keep them on the broker forever)")
@click.option("--archive-dir", "archive_dir", default="/var/lib/kubeupgrade/archive", show_default=True,
              type=click.Path(file_okay=False), help="where retention writes each campaign before removing it")
@UNSIGNED
def controller(kubeconfig: str | None, broker: str, concurrency: int, pool_nice: int, loglevel: str,
               metrics_port: int, metrics_address: str, retention_days: float, archive_dir: str,
               unsigned_messages: bool) -> None:
    """Run the controller: cluster-level tasks and the campaign dispatcher."""
    from kubeupgrade.workflow.runners import run_controller

    if not kubeconfig:
        raise InvalidInput("no kubeconfig: pass --kubeconfig FILE, or set $KUBECONFIG")
    metrics = None
    if metrics_port:
        # From the environment, never the command line: /proc/*/cmdline is world-readable.
        credentials = os.environ.get("KUBEUPGRADE_METRICS_AUTH", "")
        if ":" not in credentials:
            raise InvalidInput("--metrics-port needs credentials: set KUBEUPGRADE_METRICS_AUTH="
                               "USER:PASSWORD (the metrics name nodes and campaigns)")
        metrics = (metrics_address, metrics_port, credentials)
    from pathlib import Path

    from kubeupgrade.workflow.retention import RetentionPolicy

    run_controller(os.path.abspath(kubeconfig), broker, concurrency=concurrency, pool_nice=pool_nice,
                   loglevel=loglevel,
                   metrics=metrics, retention=RetentionPolicy(retention_days, Path(archive_dir).resolve()),
                   unsigned_messages=unsigned_messages)


@click.command()
@BROKER
@click.option("--port", default=5555, show_default=True, type=int)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--basic-auth", "basic_auth", default=None, metavar="USER:PASSWORD",
              help="required for the API (default: $KUBEUPGRADE_FLOWER_AUTH)")
def flower(broker: str, port: int, address: str, basic_auth: str | None) -> None:
    """Run Flower read-only and behind basic auth: its API could otherwise send tasks."""
    from kubeupgrade.workflow.app import use_broker

    credentials = basic_auth or os.environ.get("KUBEUPGRADE_FLOWER_AUTH")
    if not credentials or ":" not in credentials:
        raise InvalidInput("--basic-auth USER:PASSWORD is required (Flower's API can send tasks)")
    app = use_broker(broker)
    _guard_flower_metrics()
    _capture_without_wakeup()
    app.start(["flower", f"--port={port}", f"--address={address}", f"--basic-auth={credentials}",
               "--read-only=True", "--persistent=False"])


def _guard_flower_metrics() -> None:
    """Flower serves /metrics (node and task names) to anyone, even with --basic-auth: put it
    behind the same credentials as the rest of its API."""
    import tornado.web
    from flower.views.monitor import Metrics

    if not getattr(Metrics.get, "kubeupgrade_guarded", False):
        guarded = tornado.web.authenticated(Metrics.get)
        guarded.kubeupgrade_guarded = True  # type: ignore[attr-defined]
        Metrics.get = guarded  # type: ignore[method-assign]


def _capture_without_wakeup() -> None:
    """Flower's event receiver first broadcasts a wake-up control message to every worker. Ours
    do not take one (agents have remote control off, all send events from the start), and the
    flower broker user may not publish: capture without it instead of failing in a loop."""
    import flower.events
    from celery.events import EventReceiver

    class CaptureOnly(EventReceiver):  # type: ignore[misc]
        def capture(self, limit=None, timeout=None, wakeup=True):  # type: ignore[no-untyped-def]
            return super().capture(limit=limit, timeout=timeout, wakeup=False)

    flower.events.EventReceiver = CaptureOnly


@click.command()
@click.argument("campaign_file", metavar="CAMPAIGN")
@BROKER
@click.option("--wait", is_flag=True, help="wait until the campaign ends; exit 1 unless it succeeds")
@click.option("--timeout", default=24 * 3600.0, show_default=True, type=float)
@click.option("--key", default=None, metavar="FILE",
              help="the operator's signing key [default: $KUBEUPGRADE_SIGNING_KEY, then "
                   "~/.config/kubeupgrade/operator.key]")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="only plan against the live cluster (like `plan --kubeconfig`); submit nothing")
@click.option("--kubeconfig", default=default_kubeconfig, type=click.Path(exists=True, dir_okay=False),
              show_default="$KUBECONFIG, then ~/.kube/config", help="with --dry-run")
@scope_options
@click.pass_context
def submit(ctx: click.Context, campaign_file: str, broker: str, wait: bool, timeout: float,
           key: str | None, dry_run: bool, kubeconfig: str | None, only: str | None,
           nodes: str | None, selector: str | None) -> None:
    """Sign CAMPAIGN with the operator's key and submit it; prints the campaign id."""
    from kubeupgrade.api import submit as submit_campaign
    from kubeupgrade.campaign_file import load_campaign

    if dry_run:
        if not kubeconfig:
            raise InvalidInput("--dry-run plans against the live cluster: pass --kubeconfig FILE, "
                               "or set $KUBECONFIG")
        assert ctx.parent is not None
        plan = ctx.parent.command.get_command(ctx.parent, "plan")  # type: ignore[attr-defined]
        ctx.invoke(plan, campaign_file=campaign_file, output="text", listing=None,
                   kubeconfig=kubeconfig, broker=broker, only=only, nodes=nodes, selector=selector)
        return

    handle = submit_campaign(with_scope(load_campaign(campaign_file), only, nodes, selector),
                             broker=broker, key=key)
    click.echo(handle.id)
    if wait:
        state = handle.wait(timeout)
        if state != "succeeded":
            raise RuntimeFailure(f"campaign {handle.id} {state}; see `kubeupgrade status {handle.id}`")


@click.command()
@click.argument("campaign_id", required=False)
@BROKER
@click.option("-o", "--output", type=click.Choice(["text", "wide", "json", "yaml"]), default="text",
              help="wide: every column (role, progress bar, detail) whatever the terminal's width")
@click.option("--node", default=None, help="every phase of this node: state, tries, times, output")
@click.option("--watch", is_flag=True, help="refresh until the campaign ends")
@click.option("--no-color", "no_color", is_flag=True, help="plain text (also when piped, or $NO_COLOR)")
def status(campaign_id: str | None, broker: str, output: str, node: str | None, watch: bool,
           no_color: bool) -> None:
    """Show a campaign (without ID: the active ones): per-node phases, progress, durations,
    failures, cordoned nodes. Fits the terminal ($COLUMNS), never cutting a node name; plain
    aligned text when piped."""
    from rich.console import Console

    from kubeupgrade.api import get, list_campaigns
    from kubeupgrade.cli.status_view import (
        WIDE,
        follow,
        node_to_dict,
        render_node,
        render_status,
        status_to_dict,
        without_trailing_spaces,
    )

    if campaign_id is None:
        docs = list_campaigns(broker)
        active = [d for d in docs if d["state"] in ("pending", "running", "failed")
                  or (d["state"] == "lost" and not _submitted_since(d, docs))]
        if len(active) != 1:
            for doc in active:
                click.echo(printable(f"{doc['id']:<48} {doc['state']:<10} -> {doc['campaign'].get('target')}"))
            click.echo("no active campaigns" if not active else
                       "several active campaigns: `kubeupgrade status ID` shows one")
            return
        campaign_id = active[0]["id"]
    handle = get(campaign_id, broker)
    if output in ("json", "yaml"):
        doc = handle.status()
        click.echo(document(node_to_dict(doc, node) if node else status_to_dict(doc), output), nl=False)
        return
    console = Console(no_color=no_color or None)
    if output == "wide":
        console = Console(no_color=no_color or None, width=max(console.width, WIDE))
    plain = no_color or not console.is_terminal
    if node:
        console.print(render_node(handle.status(), node, width=console.width, plain=plain))
        return
    if not watch:
        screen = render_status(handle.status(), width=console.width, plain=plain)
        if not plain:
            console.print(screen)
            return
        with console.capture() as captured:
            console.print(screen)
        click.echo(without_trailing_spaces(captured.get()), nl=False)
        return
    follow(handle, console)


@click.command()
@click.argument("campaign_id")
@click.option("--node", required=True)
@click.option("--phase", default=None, help="only this phase")
@BROKER
def logs(campaign_id: str, node: str, phase: str | None, broker: str) -> None:
    """The output a node's phases captured: the whole output of a failed command or of
    `kubeadm upgrade plan`, the last lines otherwise."""
    from kubeupgrade.api import get

    handle = get(campaign_id, broker)
    doc = handle.status()
    shown = 0
    for hop, entries in enumerate(doc["entries"]):
        entry = entries.get(node)
        for record in entry["phases"] if entry else []:
            if phase and record["phase"] != phase:
                continue
            saved = handle.output(hop, node, record["phase"])
            text = saved or record["tail"]
            if not text:
                continue
            whole = "whole" if saved else "last lines"
            click.echo(printable(f"==> hop {hop + 1} {record['phase']} ({record['state']}, {whole}) <=="))
            click.echo(printable(text.rstrip("\n")))  # what the host printed, escapes shown
            shown += 1
    if not shown:
        raise InvalidInput(f"no output recorded for {node}{' ' + phase if phase else ''} in "
                           f"campaign {campaign_id}")


@click.command()
@click.argument("campaign_id")
@BROKER
def retry(campaign_id: str, broker: str) -> None:
    """Resume a failed campaign at the failed phase; nothing already done runs again."""
    from kubeupgrade.api import get

    get(campaign_id, broker).retry()
    click.echo(f"campaign {campaign_id} resumed")


def _submitted_since(lost: dict[str, Any], docs: list[dict[str, Any]]) -> bool:
    """Whether a campaign on the lost one's cluster was submitted after the loss was found."""
    return any(d["cluster"] == lost["cluster"] and d["state"] not in ("lost", "damaged")
               and d["created"] >= lost["created"] for d in docs)


@click.command()
@click.argument("campaign_id")
@BROKER
def pause(campaign_id: str, broker: str) -> None:
    """Start nothing new: no node begins its upgrade or its outage. Nodes under way finish
    their outage and are uncordoned. Lasts until `resume`, across controller restarts."""
    from kubeupgrade.api import get

    get(campaign_id, broker).pause()
    click.echo(f"campaign {campaign_id} paused; nodes under way finish their outage "
               f"(`kubeupgrade status {campaign_id}` shows them)")


@click.command()
@click.argument("campaign_id")
@BROKER
def resume(campaign_id: str, broker: str) -> None:
    """Go on with a paused campaign (after a red health gate, the gate runs again first)."""
    from kubeupgrade.api import get

    get(campaign_id, broker).resume()
    click.echo(f"campaign {campaign_id} resumed")


@click.command()
@click.argument("campaign_id")
@BROKER
@click.option("--uncordon", is_flag=True, help="also uncordon the nodes this campaign cordoned")
@click.option("--restore-repositories", "restore_repositories", is_flag=True,
              help="put the package repository back on every node of the hop, also where "
                   "packages were installed from the new one")
def abort(campaign_id: str, broker: str, uncordon: bool, restore_repositories: bool) -> None:
    """Stop dispatching (pending tasks then run nothing), put back package repositories where nothing was
    installed from the new one, and name every node left cordoned."""
    from kubeupgrade.api import get
    from kubeupgrade.kube.nodes import CORDONED_BY
    from kubeupgrade.workflow.record import DamagedRecord

    try:
        handle = get(campaign_id, broker)
        left = handle.abort(uncordon=uncordon, restore_repositories=restore_repositories)
    except DamagedRecord as error:
        click.echo(f"campaign {campaign_id} aborted and its cluster released; its record is "
                   f"damaged ({error.key}), so the nodes it cordoned are the ones annotated "
                   f"{CORDONED_BY}={campaign_id}")
        return
    click.echo(f"campaign {campaign_id} aborted")
    for node, detail in handle.repositories().items():
        click.echo(printable(f"{node}: {detail}"))
    if left:
        click.echo(printable(f"nodes left cordoned by this campaign: {', '.join(left)}")
                   + (f" (why: the events of `kubeupgrade status {campaign_id}`)" if uncordon else ""))
    else:
        click.echo("no node is left cordoned by this campaign")


@click.command("list")
@BROKER
@click.option("-o", "--output", type=click.Choice(["text", "wide", "json", "yaml"]), default="text")
@click.option("--cluster", default=None, help="only this cluster's campaigns")
def list_command(broker: str, output: str, cluster: str | None) -> None:
    """List campaigns, newest first."""
    from kubeupgrade.api import list_campaigns

    docs = [d for d in list_campaigns(broker) if cluster is None or d["cluster"] in (cluster, "?")]
    if output in ("json", "yaml"):
        click.echo(document([{k: d[k] for k in ("id", "cluster", "state", "created")} for d in docs],
                            output), nl=False)
        return
    if not docs:
        click.echo("no campaigns")
        return
    width = max(len(d["id"]) for d in docs)
    header = f"{'ID':<{width}}  {'STATE':<9}  {'CREATED':<16}  TARGET"
    click.echo(header + ("  CLUSTER  ERROR" if output == "wide" else ""))
    for doc in docs:
        if doc["state"] in ("damaged", "lost"):
            click.echo(printable(f"{doc['state']}: {doc['id']}: {doc['error']['message']}"))
            continue
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(doc["created"]))
        line = f"{doc['id']:<{width}}  {doc['state']:<9}  {created:<16}  {doc['campaign'].get('target')}"
        if output == "wide":
            line += f"  {doc['cluster']}  {((doc.get('error') or {}).get('message') or '')[:100]}"
        click.echo(printable(line))


@click.command("forget-cluster")
@click.argument("name")
@BROKER
def forget_cluster(name: str, broker: str) -> None:
    """Forget which cluster NAME was (its kube-system uid): for a cluster rebuilt under the
    same name. The next campaign for NAME binds it to the cluster the controller reaches."""
    from kubeupgrade.api import _app_and_store

    _, store = _app_and_store(broker)
    if store.forget_identity(name):
        click.echo(f"cluster {name}: forgotten; the next accepted campaign binds the name again")
    else:
        click.echo(f"cluster {name}: no binding on this broker; nothing changed")


@click.command()
@click.option("--older-than", "days", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              metavar="DAYS", help="ended campaigns unchanged for this many days")
@click.option("--archive", "archive", metavar="DIR", type=click.Path(file_okay=False),
              help="write each campaign whole to DIR/<id>.json before deleting it")
@click.option("--no-archive", is_flag=True, help="delete without an archive")
@click.option("--dry-run", is_flag=True, help="name what would be pruned; change nothing")
@BROKER
def prune(days: float, archive: str | None, no_archive: bool, dry_run: bool, broker: str) -> None:
    """Remove ended campaigns (succeeded, refused, aborted) older than DAYS from the broker,
    archived first. Failed and running campaigns, and damaged records, are never touched."""
    from pathlib import Path

    from kubeupgrade.api import _app_and_store
    from kubeupgrade.workflow.retention import RetentionPolicy
    from kubeupgrade.workflow.retention import prune as run

    if bool(archive) == no_archive:
        raise InvalidInput("prune: say where the archive goes (--archive DIR) or that there is none "
                           "(--no-archive)")
    _, store = _app_and_store(broker)
    report = run(store, RetentionPolicy(days, Path(archive) if archive else None), dry_run=dry_run)
    for campaign_id in report.pruned:
        click.echo(("would prune " if dry_run else "pruned ") + campaign_id)
    click.echo(report.summary() if not dry_run else f"{len(report.pruned)} campaign(s) would be pruned")


@click.group()
def keys() -> None:
    """Keys: the operator's campaign signing key, message-signing identities, broker users."""


@keys.command("messages")
@click.argument("directory", metavar="DIR")
def keys_messages(directory: str) -> None:
    """Create the message-signing keys and certificates: DIR/{controller,agent,operator}.key
    (mode 0600) and .pem, and DIR/trusted/ with the three certificates."""
    from pathlib import Path

    from kubeupgrade.security.messages import create_identities

    made = create_identities(Path(directory).expanduser().resolve())
    for role, identity in made.items():
        click.echo(f"{role}: KUBEUPGRADE_MESSAGE_KEY={identity.key} KUBEUPGRADE_MESSAGE_CERT={identity.cert}")
    trust = next(iter(made.values())).trust
    click.echo(f"every controller, agent and operator: KUBEUPGRADE_MESSAGE_TRUST={trust} "
               "(copy the directory; only the role's own .key goes with it)")


@keys.command("broker-users")
@click.argument("directory", metavar="DIR")
@click.option("--url", required=True, metavar="URL",
              help="how hosts reach the broker, without credentials: "
                   "rediss://HOST:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/kubeupgrade/redis-ca.crt")
def keys_broker_users(directory: str, url: str) -> None:
    """Create the broker's ACL users, one per role, with fresh passwords: DIR/kubeupgrade-users.acl
    (redis-server's aclfile) and DIR/ROLE.env with each role's KUBEUPGRADE_BROKER (mode 0600)."""
    from pathlib import Path

    from kubeupgrade.security.broker_users import create_broker_users

    made = create_broker_users(Path(directory).expanduser().resolve(), url)
    click.echo(f"ACL users: {made.acl} (point deploy/redis's aclfile at it)")
    for role, path in made.env_files.items():
        click.echo(f"{role}: {path}")


@keys.command("create")
@click.option("--dir", "directory", default="~/.config/kubeupgrade", show_default=True)
@click.option("--name", default="operator", show_default=True)
def keys_create(directory: str, name: str) -> None:
    """Create an Ed25519 key pair: NAME.key (mode 0600, for submit) and NAME.pub (for nodes)."""
    from pathlib import Path

    from kubeupgrade.security.signing import TRUSTED_DIR, create_key

    pair = create_key(Path(directory).expanduser(), name)
    click.echo(f"key {pair.id}: private {pair.private}, public {pair.public}")
    click.echo(f"install {pair.public.name} in {TRUSTED_DIR}/ (owned by root) on every node")


COMMANDS = (agent, controller, flower, submit, status, logs, pause, resume, retry, abort, list_command,
            forget_cluster, prune, keys)
