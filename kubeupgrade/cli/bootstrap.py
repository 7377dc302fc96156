"""`kubeupgrade bootstrap ...`: build the offline wheelhouse, install agents on hosts over SSH."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kubeupgrade.errors import InvalidInput

_CHECKOUT = Path(__file__).resolve().parents[2]


@click.group()
def bootstrap() -> None:
    """Install agents on hosts over SSH, offline and hash-checked."""


@bootstrap.command("wheelhouse")
@click.argument("directory", metavar="DIR")
@click.option("--python", "pythons", multiple=True, metavar="3.X",
              help="a Python the hosts run (repeat; default: 3.9, 3.10, 3.11, 3.12)")
@click.option("--platform", "platforms", multiple=True, metavar="TAG",
              help="a wheel platform tag of the hosts (repeat; default: manylinux x86_64)")
@click.option("--source", default=None, type=click.Path(exists=True, file_okay=False),
              help="the kubeupgrade source tree to build the wheel from [default: this one]")
def wheelhouse(directory: str, pythons: tuple[str, ...], platforms: tuple[str, ...], source: str | None) -> None:
    """Build DIR/py3.X/: the kubeupgrade wheel, the agent's dependencies for that Python, and a
    requirements.txt with each wheel's SHA-256 (the hosts install with --require-hashes)."""
    from kubeupgrade.bootstrap import wheelhouse as house

    tree = Path(source) if source else _CHECKOUT
    if not (tree / "pyproject.toml").is_file():
        raise InvalidInput(f"{tree}: no pyproject.toml; pass --source with the kubeupgrade source tree")
    built = house.build(Path(directory).resolve(), tree, pythons or house.DEFAULT_PYTHONS,
                        platforms or house.DEFAULT_PLATFORMS)
    for version in pythons or house.DEFAULT_PYTHONS:
        where = built.for_python(version)
        click.echo(f"Python {version}: {len(list(where.glob('*.whl')))} wheels in {where}")


@bootstrap.command("agents")
@click.argument("hosts", nargs=-1, required=True, metavar="[USER@]HOST[:PORT]=NODE...")
@click.option("--wheelhouse", "wheels", required=True, type=click.Path(exists=True, file_okay=False),
              help="built by `kubeupgrade bootstrap wheelhouse`")
@click.option("--broker-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="a file holding the agents' broker URL (the agent role's; keeps it off argv)")
@click.option("--trusted-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the operator's public key (`kubeupgrade keys create`)")
@click.option("--messages", required=True, type=click.Path(exists=True, file_okay=False),
              help="the directory of `kubeupgrade keys messages` (agent.key, agent.pem, trusted/)")
@click.option("--known-hosts", default="~/.ssh/known_hosts", show_default=True,
              help="host keys to check against; a host not listed is refused")
@click.option("--accept-new-host-keys", is_flag=True,
              help="trust and record the key of a host not yet in --known-hosts (a changed key "
                   "is refused all the same)")
@click.option("--identity", default=None, type=click.Path(exists=True, dir_okay=False),
              help="SSH private key [default: the SSH agent and ~/.ssh]")
@click.option("--python", default="python3", show_default=True, help="the hosts' Python (3.9+)")
@click.option("--sudo", is_flag=True, help="run the install steps with `sudo -n` (not logging in as root)")
@click.option("--host-root", default="/", show_default=True,
              help="install under this directory instead of / (to rehearse on throwaway hosts)")
@click.option("--dry-run", is_flag=True, help="connect and check, print the steps, change nothing")
@click.option("--no-verify", is_flag=True, help="do not wait for each agent to answer on the broker")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def agents(hosts: tuple[str, ...], wheels: str, broker_file: str, trusted_key: str, messages: str,
           known_hosts: str, accept_new_host_keys: bool, identity: str | None, python: str,
           sudo: bool, host_root: str, dry_run: bool, no_verify: bool, output: str) -> None:
    """Install, configure and start the agent on each host; one result row per host. A failing
    host does not stop the others; exit 1 if any failed. Running it again is safe."""
    from kubeupgrade.bootstrap.plan import Layout, Target
    from kubeupgrade.bootstrap.remote import Settings, bootstrap_all, verify_with_broker
    from kubeupgrade.bootstrap.wheelhouse import Wheelhouse
    from kubeupgrade.security.signing import key_id, load_public_key

    targets = [Target.parse(text) for text in hosts]
    nodes = [t.node for t in targets]
    if len(set(nodes)) != len(nodes):
        raise InvalidInput("a node is named twice: each HOST=NODE needs its own node")
    try:
        broker = Path(broker_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"--broker-file {broker_file}: cannot read it: "
                           f"{getattr(error, 'strerror', None) or error}") from None
    message_dir = Path(messages)
    for needed in ("agent.key", "agent.pem"):
        if not (message_dir / needed).is_file():
            raise InvalidInput(f"--messages {messages}: no {needed} (made by `kubeupgrade keys messages`)")
    operator = Path(trusted_key)
    operator_id = key_id(load_public_key(operator))
    settings = Settings(
        wheelhouse=Wheelhouse(Path(wheels)), broker=broker, operator_key=operator, messages=message_dir,
        known_hosts=Path(known_hosts).expanduser(), accept_new_host_keys=accept_new_host_keys,
        identity=Path(identity) if identity else None, layout=Layout(host_root), python=python,
        sudo=sudo, dry_run=dry_run,
        verify=None if (dry_run or no_verify) else verify_with_broker(broker, operator_id))
    results = bootstrap_all(targets, settings)
    if output == "json":
        click.echo(json.dumps([{"host": r.target.label, "node": r.target.node, "ok": r.ok, "detail": r.detail}
                               for r in results], indent=1))
    else:
        width = max(len(r.target.label) for r in results)
        click.echo(f"{'HOST':<{width}}  {'NODE':<20}  RESULT  DETAIL")
        for r in results:
            click.echo(f"{r.target.label:<{width}}  {r.target.node:<20}  {'ok' if r.ok else 'FAIL':<6}  {r.detail}")
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(1)
