"""Bootstrap agents over SSH (Fabric): each host in turn, every host gets a result, a failure
stops only its own host.

Host keys are checked against a known_hosts file; a host it does not list is refused unless
the operator opted in with --accept-new-host-keys (then its key is added to the file), and a
host whose key changed is always refused.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeupgrade.bootstrap.plan import (
    UNIT,
    Layout,
    Target,
    agent_env,
    remote_steps,
    shell,
    unit_text,
)
from kubeupgrade.bootstrap.wheelhouse import REQUIREMENTS, Wheelhouse
from kubeupgrade.errors import KubeupgradeError

SHIPPED_UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / UNIT
COMMAND_TIMEOUT = 600  # seconds; a pip install from the wheelhouse takes well under a minute


@dataclass(frozen=True)
class Settings:
    wheelhouse: Wheelhouse
    broker: str
    operator_key: Path  # the operator's .pub
    messages: Path  # `kubeupgrade keys messages` directory: agent.key, agent.pem, trusted/
    known_hosts: Path
    accept_new_host_keys: bool = False
    identity: Path | None = None  # the SSH private key; else the SSH agent and ~/.ssh defaults
    layout: Layout = field(default_factory=Layout)
    python: str = "python3"
    sudo: bool = False
    dry_run: bool = False
    connect_timeout: float = 10.0
    verify: Callable[[str], str | None] | None = None  # node -> None when its agent answers, else why


@dataclass(frozen=True)
class Result:
    target: Target
    ok: bool
    detail: str


def bootstrap_all(targets: list[Target], settings: Settings) -> list[Result]:
    return [bootstrap_one(target, settings) for target in targets]


def bootstrap_one(target: Target, settings: Settings) -> Result:
    import paramiko

    try:
        return _bootstrap(target, settings)
    except paramiko.BadHostKeyException:
        return Result(target, False, f"host key of {target.host} changed; refused (check the "
                                     f"host, then fix {settings.known_hosts})")
    except paramiko.SSHException as error:
        if "not found in known_hosts" in str(error):
            return Result(target, False, f"{target.host} is not in {settings.known_hosts}; refused "
                                         "(add its key, or pass --accept-new-host-keys)")
        return Result(target, False, f"SSH: {error}")
    except OSError as error:  # refused, unreachable, timed out
        return Result(target, False, f"cannot connect to {target.label}: {error.strerror or error}")
    except (_StepFailed, KubeupgradeError) as error:
        return Result(target, False, str(error))
    except Exception as error:  # noqa: BLE001 - one host's surprise must not stop the others
        return Result(target, False, f"unexpected {type(error).__name__}: {error}")


class _StepFailed(Exception):
    pass


def _connection(target: Target, settings: Settings) -> Any:
    import paramiko
    from fabric import Connection

    kwargs: dict[str, Any] = {"allow_agent": True, "look_for_keys": settings.identity is None}
    if settings.identity is not None:
        kwargs["key_filename"] = str(settings.identity)
    connection = Connection(target.host, user=target.user, port=target.port,
                            connect_timeout=int(settings.connect_timeout), connect_kwargs=kwargs)
    # Fabric trusts any new host key by default (AutoAddPolicy): not here.
    client = connection.client
    client._system_host_keys = paramiko.HostKeys()  # only the file we were given
    settings.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    settings.known_hosts.touch(exist_ok=True)
    client.load_host_keys(str(settings.known_hosts))
    # --accept-new-host-keys is OpenSSH's accept-new: an unknown host's key is added to the
    # file (paramiko saves it there, the file loaded above); a changed key is refused before
    # any policy is asked.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if settings.accept_new_host_keys
                                       else paramiko.RejectPolicy())
    return connection


def _run(connection: Any, argv: list[str], sudo: bool, what: str) -> str:
    result = connection.run(shell(argv, sudo), hide=True, warn=True, timeout=COMMAND_TIMEOUT, in_stream=False)
    if result.exited != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise _StepFailed(f"{what}: `{shell(argv)}` exited {result.exited}: {last}")
    return str(result.stdout)


def _bootstrap(target: Target, settings: Settings) -> Result:
    trusted = sorted((settings.messages / "trusted").glob("*.pem"))
    with _connection(target, settings) as connection:
        connection.open()
        version = _run(connection, [settings.python, "-c",
                                    "import sys; print('%d.%d' % sys.version_info[:2])"],
                       False, "the host's Python").strip()
        wheels = settings.wheelhouse.for_python(version)
        if settings.dry_run:
            steps = remote_steps(settings.layout, "UPLOAD", [c.name for c in trusted],
                                 settings.operator_key.name, settings.python)
            plan = "; ".join(shell(step, settings.sudo) for step in steps)
            return Result(target, True, f"dry run: Python {version}, would run: {plan}")
        upload = _run(connection, ["mktemp", "-d", "/tmp/kubeupgrade-bootstrap.XXXXXXXX"], False,
                      "a private upload directory").strip()
        try:
            _upload(connection, upload, wheels, trusted, target, settings)
            for step in remote_steps(settings.layout, upload, [c.name for c in trusted],
                                     settings.operator_key.name, settings.python):
                _run(connection, step, settings.sudo, "install")
        finally:
            connection.run(shell(["rm", "-rf", upload]), hide=True, warn=True, in_stream=False)
    if settings.verify is not None:
        why = settings.verify(target.node)
        if why is not None:
            return Result(target, False, f"installed, but {why}")
    return Result(target, True, f"agent for {target.node} running (Python {version})")


def _upload(connection: Any, upload: str, wheels: Path, trusted: list[Path], target: Target,
            settings: Settings) -> None:
    """Into the private directory (mode 0700 from mktemp): the files the steps install."""
    sftp = connection.sftp()

    def send(data: bytes, name: str, mode: int) -> None:
        remote = posixpath.join(upload, name)
        with sftp.open(remote, "wb") as out:
            sftp.chmod(remote, mode)  # in a 0700 directory all along; installed with its own mode
            out.write(data)

    sftp.mkdir(posixpath.join(upload, "wheels"), 0o700)
    for wheel in sorted(wheels.glob("*.whl")) + [wheels / REQUIREMENTS]:
        send(wheel.read_bytes(), f"wheels/{wheel.name}", 0o644)
    send(agent_env(settings.layout, target.node, settings.broker).encode(), "agent.env", 0o600)
    send((settings.messages / "agent.key").read_bytes(), "agent.key", 0o600)
    send((settings.messages / "agent.pem").read_bytes(), "agent.pem", 0o644)
    for cert in trusted:
        send(cert.read_bytes(), f"trusted-{cert.name}", 0o644)
    send(settings.operator_key.read_bytes(), settings.operator_key.name, 0o644)
    send(unit_text(SHIPPED_UNIT.read_text(), settings.layout).encode(), UNIT, 0o644)


def verify_with_broker(broker: str, key_id: str, timeout: float = 60.0) -> Callable[[str], str | None]:
    """A check that the node's agent answers on the broker, at this version, trusting the key."""
    from kubeupgrade import __version__
    from kubeupgrade.workflow.liveness import agent_descriptions
    from kubeupgrade.workflow.record import CampaignStore

    store = CampaignStore.from_url(broker)

    def check(node: str) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            described = agent_descriptions(store.redis, [node]).get(node)
            # A key of an agent started before this bootstrap may still be there: wait for one
            # that says what was just installed.
            if described and described.get("version") == __version__ and key_id in (described.get("trusts") or []):
                return None
            if time.monotonic() > deadline:
                if not described:
                    return f"its agent did not answer on the broker within {timeout:.0f}s (journalctl -u {UNIT})"
                return f"its agent answers as {described.get('version')} trusting {described.get('trusts')}"
            time.sleep(0.5)

    return check
