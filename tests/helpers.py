"""Helpers for tests that drive sandbox hosts and wait on conditions."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kubeupgrade.sandbox.manager import Sandbox


@contextmanager
def sandbox_up(directory, **options) -> Iterator[Sandbox]:
    """A sandbox for a module's tests (`Sandbox.up` options), brought down however they end."""
    box, _ = Sandbox.up(directory, **options)
    try:
        yield box
    finally:
        box.down()


def run_on(box: Sandbox, node: str, *argv: str, stdin: str | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command on a sandbox node, as an agent does: argv list, its bin dir first on PATH."""
    env = {**os.environ, "PATH": f"{box.node_bin(node)}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout,
                          input=stdin if stdin is not None else "", check=False)


def start_redis_server(port: int, directory) -> subprocess.Popen:
    """A private redis-server on 127.0.0.1:`port` keeping nothing on disk, once it answers (the
    caller kills it; starting it again on the same port is a broker restart)."""
    import shutil

    from kubeupgrade.errors import RuntimeFailure
    from kubeupgrade.sandbox.stack import wait_for_redis

    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(directory)], stdout=subprocess.DEVNULL)
    try:
        wait_for_redis(port, "see the test's output")
    except RuntimeFailure:
        server.kill()
        raise
    return server


def wait_for(condition: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> object:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def write_campaign(path, target: str, **policies) -> str:
    """A campaign file for the sandbox cluster (nodes discovered from its API server)."""
    import yaml

    policies.setdefault("retries", {"attempts": 2, "backoff_seconds": 0.2})
    policies.setdefault("drain", {"delete_emptydir_data": True, "timeout": 30})
    policies.setdefault("agent_timeout", 30)
    policies.setdefault("ready_timeout", 30)
    path.write_text(yaml.safe_dump({"cluster": "sandbox", "target": target, "policies": policies}))
    return str(path)


def controller_rbac_without(directory, resource: str):
    """The shipped controller RBAC manifest with the ClusterRole's rule on `resource` taken out."""
    import yaml

    from kubeupgrade.sandbox.stack import CONTROLLER_RBAC

    documents = list(yaml.safe_load_all(CONTROLLER_RBAC.read_text()))
    for doc in documents:
        if doc["kind"] == "ClusterRole":
            doc["rules"] = [r for r in doc["rules"] if r["resources"] != [resource]]
    trimmed = directory / f"controller-rbac-without-{resource.replace('/', '-')}.yaml"
    trimmed.write_text(yaml.safe_dump_all(documents))
    return trimmed


def python39() -> str | None:
    """A Python 3.9 that runs: pyenv's own build, else python3.9 on PATH (not pyenv's shim
    for a version it has not activated)."""
    import glob
    import os
    import shutil
    import subprocess

    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    for candidate in [*reversed(candidates), shutil.which("python3.9")]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def package_source(directory):
    """A copy of what builds the kubeupgrade distribution (a build writes into its source tree:
    never into the checkout the other tests run from)."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, directory / name)
    for package in ("kubeupgrade", "workers"):
        shutil.copytree(root / package, directory / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return directory


def self_signed_certificate(key, valid_for, *, common_name: str = "kubeupgrade operator"):
    """A self-signed X.509 certificate of private `key` (Ed25519, or RSA signed with SHA-256),
    valid from 60 days ago until `valid_for` (a timedelta, negative for one already expired)
    from now, as PEM bytes."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=60)).not_valid_after(now + valid_for)
            .sign(key, hashes.SHA256() if isinstance(key, rsa.RSAPrivateKey) else None))
    return cert.public_bytes(serialization.Encoding.PEM)


def spy_on_redis(monkeypatch, alone: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """Spies on what redis-py sends, for the rest of the test: the commands among `alone` sent
    on their own (not in a pipeline), and each pipeline run as its commands' names."""
    import redis.client

    sent_alone: list[str] = []
    pipelines: list[list[str]] = []
    real_command, real_execute = redis.client.Redis.execute_command, redis.client.Pipeline.execute

    def command(self, *args, **options):  # a spy: notes, then does what it always does
        if args and args[0] in alone and not isinstance(self, redis.client.Pipeline):
            sent_alone.append(args[0])
        return real_command(self, *args, **options)

    def execute(self, *args, **options):
        pipelines.append([str(c[0][0]) for c in self.command_stack])
        return real_execute(self, *args, **options)

    monkeypatch.setattr(redis.client.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    return sent_alone, pipelines


def begin_sent(store: Any, campaign: str, hop: int, node: str, phase: str, attempt: int, task_id: str,
               **options: Any) -> str:
    """CampaignStore.begin_phase for a task the dispatcher sent: the task's id recorded on the
    pending phase first, as Dispatcher._chains does before it sends (a task it did not send
    runs nothing)."""
    def record(entry: Any) -> bool:
        if entry["attempt"] != attempt:
            return False
        for sent in entry["phases"]:
            if sent["phase"] == phase and sent["state"] == "pending":
                sent["task_id"] = task_id
                return True
        return False

    store.update_entry(campaign, hop, node, record)
    return str(store.begin_phase(campaign, hop, node, phase, attempt, task_id, **options))
