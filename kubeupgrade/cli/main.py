"""The `kubeupgrade` command: argument definitions only; the work happens in the layers below.

`main()` runs click in non-standalone mode so that every error, ours or click's, goes through
`exitcodes.report`: one line on stderr and the documented exit code, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import sys

import click

from kubeupgrade.cli import exitcodes, render
from kubeupgrade.cli.scope import scope_options, with_scope
from kubeupgrade.errors import InvalidInput, PolicyRefused


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubeupgrade")
def cli() -> None:
    """Plan and run safe, resumable upgrades of kubeadm clusters."""


OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["text", "wide", "json", "yaml"]), default="text",
    show_default=True, help="wide: every column, nothing wrapped at the terminal's width"
)


def _emit(data: object, output: str) -> None:
    click.echo(render.document(data, output), nl=False)


def _read_text(path: str, what: str) -> str:
    from kubeupgrade.campaign_file import read_input_file

    return read_input_file(path, what)


@cli.command()
@click.argument("campaign_file", metavar="CAMPAIGN")
@OUTPUT
@click.option("--listing", metavar="FILE",
              help="saved `apt-cache madison kubeadm` or `dnf list --showduplicates kubeadm` "
                   "output, to resolve 'latest patch' targets")
@click.option("--kubeconfig", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="read the nodes and their live versions from the cluster")
@click.option("--broker", metavar="URL", default=lambda: os.environ.get("KUBEUPGRADE_BROKER"),
              show_default="$KUBEUPGRADE_BROKER, else none",
              help="refine the estimate with phase durations recorded there by earlier campaigns")
@scope_options
def plan(campaign_file: str, output: str, listing: str | None, kubeconfig: str | None,
         broker: str | None = None, only: str | None = None, nodes: str | None = None,
         selector: str | None = None) -> None:
    """Show what upgrading with CAMPAIGN would do, and whether policy allows it (exit 3 if not)."""
    from kubeupgrade.campaign_file import load_campaign
    from kubeupgrade.planning.planner import plan_campaign

    campaign = with_scope(load_campaign(campaign_file), only, nodes, selector)
    identity = None
    if kubeconfig:
        campaign, identity = _with_live_cluster(campaign, kubeconfig)
    available = []
    if listing:
        available = [row.version for row in _listing(listing, _read_text(listing, "listing"))]
    result = plan_campaign(campaign, available)
    durations = _recorded_durations(broker, campaign.cluster)
    if output in ("json", "yaml"):
        _emit(render.plan_to_dict_full(result, identity.to_dict() if identity else None,
                                       campaign.policies, durations), output)
    else:
        if identity:
            click.echo(f"Connected to cluster {identity.describe()}")
        click.echo(render.plan_to_text(result, campaign.policies, shutil.get_terminal_size().columns,
                                       durations, wide=output == "wide"))
        if identity and not result.refused:
            click.echo(f"Rehearse it first on a mirror of this cluster: kubeupgrade rehearse "
                       f"{campaign_file} --kubeconfig {kubeconfig}")
    if result.refused:
        raise PolicyRefused(
            f"plan refused: {len(result.violations)} policy violation(s), first: "
            f"{result.violations[0].message}"
        )


def _recorded_durations(broker: str | None, cluster: str):  # type: ignore[no-untyped-def]
    """Earlier campaigns' phase durations, or the defaults when there is no broker to ask. The
    estimate is advice: a broker that does not answer leaves it on the defaults, with a warning,
    rather than stopping the plan; a malformed URL is still refused (exit 2)."""
    from kubeupgrade.planning.estimate import DEFAULTS

    if not broker:
        return DEFAULTS
    from kubeupgrade.api import recorded_durations
    from kubeupgrade.errors import RuntimeFailure

    try:
        return recorded_durations(cluster, broker)
    except RuntimeFailure as error:
        click.echo(f"warning: {error}; the estimate uses typical phase durations", err=True)
        return DEFAULTS


def _with_live_cluster(campaign, kubeconfig: str):  # type: ignore[no-untyped-def]
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.discovery import cluster_version, discover_nodes
    from kubeupgrade.kube.identity import mismatch, read_identity
    from kubeupgrade.planning.live import with_live_state

    api = KubeApi(kubeconfig)
    try:
        identity = read_identity(api)
        why = mismatch(campaign.cluster, identity)
        if why:
            raise PolicyRefused(f"{kubeconfig}: {why}")
        return with_live_state(campaign, discover_nodes(api), cluster_version(api)), identity
    finally:
        api.close()


def _listing(source: str, text: str, package: str = "kubeadm"):  # type: ignore[no-untyped-def]
    """A saved package listing, with the file named in any complaint about it."""
    from kubeupgrade.host.listings import parse_listing

    try:
        return parse_listing(text, package)
    except InvalidInput as error:
        raise InvalidInput(f"{'stdin' if source == '-' else source}: {error}") from None


@cli.group()
def versions() -> None:
    """Kubernetes versions known to a package repository."""


@versions.command("available")
@click.option("--listing", metavar="FILE", required=True,
              help="saved output of `apt-cache madison kubeadm` or "
                   "`dnf list --showduplicates kubeadm` ('-' for stdin)")
@click.option("--minor", metavar="X.Y", help="only this minor, e.g. 1.31")
@click.option("--package", default="kubeadm", show_default=True)
@OUTPUT
def versions_available(listing: str, minor: str | None, package: str, output: str) -> None:
    """List the versions in a package listing, newest first."""
    from kubeupgrade.model.versions import parse_minor

    text = _read_text(listing, "listing")
    rows = _listing(listing, text, package)
    if minor is not None:
        wanted = parse_minor(minor)
        rows = [row for row in rows if row.version.minor_version == wanted]
        if not rows:
            raise InvalidInput(f"{listing}: no {package} {wanted.plain}.x versions in the listing")
    if output in ("json", "yaml"):
        _emit(render.listing_to_dict(rows), output)
    else:  # text and wide: every column is already shown
        click.echo(render.listing_to_text(rows))


from kubeupgrade.cli.bootstrap import bootstrap as _bootstrap_group  # noqa: E402
from kubeupgrade.cli.engine import COMMANDS  # noqa: E402 - registered on the group above
from kubeupgrade.cli.sandbox import sandbox as _sandbox_group  # noqa: E402

cli.add_command(_sandbox_group)
cli.add_command(_bootstrap_group)
for _command in COMMANDS:
    cli.add_command(_command)


@cli.command()
@click.argument("campaign_file", metavar="CAMPAIGN")
@click.option("--kubeconfig", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              default=lambda: _default_kubeconfig(), show_default="$KUBECONFIG, then ~/.kube/config",
              help="the live cluster, read only (get and list)")
@click.option("--time-scale", default=0.005, show_default=True, type=float,
              help="how fast the mirror's simulated hosts run (1 = real-world timings)")
@click.option("--broker", metavar="URL", default=lambda: os.environ.get("KUBEUPGRADE_BROKER"),
              show_default="$KUBEUPGRADE_BROKER, else none",
              help="estimate with phase durations recorded there by earlier campaigns")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rehearse(campaign_file: str, kubeconfig: str | None, time_scale: float, output: str,
             broker: str | None = None) -> None:
    """Run CAMPAIGN on a sandbox that mirrors the live cluster (its nodes, workloads, pods per
    node and PodDisruptionBudgets), reading the cluster only: say what would block the real run,
    how long it would take, and whether every safety promise held. Exit 0 if it would succeed,
    3 if a policy or a blocker would stop it."""
    import json

    from kubeupgrade.campaign_file import load_campaign
    from kubeupgrade.rehearsal import rehearse as run
    from kubeupgrade.rehearsal import render

    if kubeconfig is None:
        raise InvalidInput("no kubeconfig: pass --kubeconfig, or set $KUBECONFIG")
    durations = _recorded_durations(broker, load_campaign(campaign_file).cluster)
    report = run(campaign_file, kubeconfig, time_scale=time_scale, durations=durations)
    click.echo(json.dumps(report.to_dict(), indent=2) if output == "json" else render(report))
    if not report.passed:
        raise PolicyRefused(f"the rehearsal of {campaign_file} did not succeed ({report.state}): "
                            f"{report.blockers[0] if report.blockers else report.error or 'see the report'}")


@cli.command()
@click.argument("campaign_file", metavar="[CAMPAIGN]", required=False)
@click.option("--broker", metavar="URL", default=lambda: os.environ.get("KUBEUPGRADE_BROKER"),
              show_default="$KUBEUPGRADE_BROKER", help="the broker the controller and agents use")
@click.option("--kubeconfig", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="the controller's kubeconfig: the cluster, and whether it holds the controller's rights")
@click.option("--key", metavar="FILE", help="the operator's signing key (default as `submit`)")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor(campaign_file: str | None, broker: str | None, kubeconfig: str | None, key: str | None,
           output: str) -> None:
    """Check what a campaign needs before submitting it: the broker (answers, TLS, a controller
    leading), the operator's key, the controller's rights on the cluster (reads and dry-run
    writes only), and a live agent of this version trusting the key on every node (the
    campaign's, else the cluster's). One row per check with the fix; exit 0 if all pass, 1 if not."""
    import dataclasses
    import json

    from kubeupgrade.doctor import diagnose, render

    if not broker:
        raise InvalidInput("no broker: pass --broker URL, or set $KUBEUPGRADE_BROKER")
    nodes = None
    if campaign_file:
        from kubeupgrade.campaign_file import load_campaign

        listed = load_campaign(campaign_file).nodes
        nodes = [n.name for n in listed] if listed else None
    rows = diagnose(broker, kubeconfig, key, nodes)
    click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) if output == "json" else render(rows))
    if not all(row.ok for row in rows):
        raise click.exceptions.Exit(1)


def _default_kubeconfig() -> str | None:
    from kubeupgrade.cli.engine import default_kubeconfig

    return default_kubeconfig()


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g. `source <(kubeupgrade completion bash)`."""
    from click.shell_completion import get_completion_class

    script = get_completion_class(shell)
    assert script is not None
    click.echo(script(cli, {}, "kubeupgrade", "_KUBEUPGRADE_COMPLETE").source())


def main(argv: list[str] | None = None) -> int:
    try:
        # Without standalone mode click returns (not raises) a command's Exit code.
        returned = cli.main(args=argv, prog_name="kubeupgrade", standalone_mode=False)
        if isinstance(returned, int) and not isinstance(returned, bool):
            return returned
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        return exitcodes.RUNTIME_FAILURE
    except BaseException as error:  # noqa: BLE001 - the single place errors become exit codes
        if isinstance(error, KeyboardInterrupt):
            print("error: interrupted", file=sys.stderr)
            return 130
        if isinstance(error, SystemExit):
            return int(error.code or 0)
        return exitcodes.report(error)
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
