"""`kubeupgrade bootstrap agents` over real SSH: throwaway hosts are real sshd processes on their
own ports, each with its own directory standing in for the host's root (its own bin/ first on
the session's PATH, where a systemctl starts the installed unit). Agents are installed from a
hash-checked wheelhouse into a Python 3.9 of the "host", configured, started, and verified on a
real broker; an unknown host key is refused, an unreachable host is reported while the others
go on, a changed key is refused even with --accept-new-host-keys, and a second run is safe."""

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubeupgrade import __version__
from kubeupgrade.sandbox.processes import free_port
from kubeupgrade.security.messages import create_identities
from kubeupgrade.security.signing import create_key
from kubeupgrade.workflow.liveness import agent_descriptions
from kubeupgrade.workflow.record import CampaignStore
from tests.helpers import package_source, python39, wait_for

SSHD = "/usr/sbin/sshd"
FAKES = Path(__file__).resolve().parents[1] / "fakes"


@dataclass
class Host:
    root: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def public_key(self) -> str:
        """"ssh-ed25519 AAAA...", as known_hosts holds it (without the comment)."""
        return " ".join((self.root / "ssh_host_ed25519_key.pub").read_text().split()[:2])

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.public_key}\n"

    def target(self, node: str) -> str:
        return f"root@127.0.0.1:{self.port}={node}"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_host(root: Path, client_key: Path) -> Host:
    """A real sshd for one throwaway host: its own host key, port, and bin/ (with systemctl)."""
    root.mkdir(parents=True)
    (root / "bin").mkdir()
    fake = root / "bin" / "systemctl"
    fake.write_text(f"#!{sys.executable}\n" + (FAKES / "systemctl").read_text())
    fake.chmod(0o755)
    keygen(root / "ssh_host_ed25519_key")
    (root / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    host = Host(root, free_port())
    (root / "sshd_config").write_text(
        f"Port {host.port}\nListenAddress 127.0.0.1\nHostKey {root}/ssh_host_ed25519_key\n"
        f"PidFile {root}/sshd.pid\nAuthorizedKeysFile {root}/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nSetEnv PATH={root}/bin:/usr/local/bin:/usr/bin:/bin\n"
        "Subsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    host.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                    stdout=open(root / "sshd.log", "wb"), stderr=subprocess.STDOUT)
    wait_for(lambda: b"Server listening" in (root / "sshd.log").read_bytes(), timeout=20)
    return host


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    if python39() is None:
        pytest.skip("no Python 3.9 on this machine (python3.9 on PATH or under ~/.pyenv)")
    where = tmp_path_factory.mktemp("wheelhouse")
    source = package_source(tmp_path_factory.mktemp("source") / "kubeupgrade")
    built = subprocess.run([sys.executable, "-m", "kubeupgrade", "bootstrap", "wheelhouse", str(where),
                            "--python", "3.9", "--source", str(source)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    return where


@pytest.fixture
def hosts(tmp_path):
    if not os.path.exists(SSHD):
        pytest.skip("no sshd (apt-get install openssh-server; .ci/run does)")
    client_key = tmp_path / "client_key"
    keygen(client_key)
    made = []

    def make(name: str) -> Host:
        made.append(start_host(tmp_path / name, client_key))
        return made[-1]

    make.client_key = client_key
    yield make
    for host in made:
        pid_file = host.root / "run" / "kubeupgrade-agent.service.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), 9)
            except ProcessLookupError:
                pass
        host.process.kill()
        host.process.wait(10)


def test_bootstrap_over_ssh_checks_host_keys_and_reports_every_host(hosts, wheelhouse, redis_url, tmp_path):
    first, second, stranger = hosts("host-1"), hosts("host-2"), hosts("host-3")
    unreachable = free_port()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(first.known_hosts_line() + second.known_hosts_line())
    operator = create_key(tmp_path / "operator")
    create_identities(tmp_path / "messages")
    broker_file = tmp_path / "broker.url"
    broker_file.write_text(redis_url + "\n")
    store = CampaignStore.from_url(redis_url)
    python = python39()

    def bootstrap(*targets: str, root: Host, extra=()):
        """One run of the command; its rows by node. (--host-root: the directory standing in
        for the hosts' /, which a real run leaves at /.)"""
        done = subprocess.run(
            [sys.executable, "-m", "kubeupgrade", "bootstrap", "agents", *targets, "--wheelhouse", str(wheelhouse),
             "--broker-file", str(broker_file), "--trusted-key", str(operator.public),
             "--messages", str(tmp_path / "messages"), "--known-hosts", str(known_hosts),
             "--identity", str(hosts.client_key), "--python", python, "--host-root", str(root.root),
             "-o", "json", *extra], capture_output=True, text=True, timeout=900)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, {row["node"]: row for row in json.loads(done.stdout or "[]")}

    def run(host: Host, node: str, extra=()):
        code, rows = bootstrap(host.target(node), root=host, extra=extra)
        return code, rows[node]

    # A dry run connects and checks, and changes nothing.
    code, row = run(first, "node-1", ["--dry-run"])
    assert code == 0 and row["ok"] and row["detail"].startswith("dry run: Python 3.9"), row
    assert not (first.root / "opt").exists()

    code, row = run(first, "node-1")
    assert code == 0 and row["ok"], row
    code, row = run(second, "node-2")
    assert code == 0 and row["ok"], row
    described = agent_descriptions(store.redis, ["node-1", "node-2"])
    assert set(described) == {"node-1", "node-2"}
    assert all(d["version"] == __version__ and operator.id in d["trusts"] and d["signed_messages"]
               and d["python"].startswith("3.9.") for d in described.values())
    for host in (first, second):
        etc = host.root / "etc" / "kubeupgrade"
        for private in (etc / "agent.env", etc / "messages" / "agent.key"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        installed = subprocess.run([str(host.root / "opt/kubeupgrade/bin/pip"), "list", "--format", "json"],
                                   capture_output=True, text=True, check=True).stdout
        names = {p["name"].lower() for p in json.loads(installed)}
        assert "kubeupgrade" in names and not names & {"kubernetes", "flower", "fabric"}
    assert not list(Path("/tmp").glob("kubeupgrade-bootstrap.*"))  # upload directories removed

    # Unknown host key: refused, nothing installed. Unreachable: reported. Both in one run with
    # a good host, which is bootstrapped all the same (again: idempotent, the agent restarted).
    before = (first.root / "run" / "kubeupgrade-agent.service.pid").read_text()
    code, rows = bootstrap(first.target("node-1"), stranger.target("node-3"),
                           f"root@127.0.0.1:{unreachable}=node-4", root=first)
    assert code == 1
    assert rows["node-1"]["ok"], rows
    assert "not in" in rows["node-3"]["detail"] and "refused" in rows["node-3"]["detail"]
    assert "cannot connect" in rows["node-4"]["detail"]
    assert not (stranger.root / "opt").exists()
    assert (first.root / "run" / "kubeupgrade-agent.service.pid").read_text() != before
    wait_for(lambda: "node-1" in agent_descriptions(store.redis, ["node-1"]), timeout=60)

    # Opting in records the new key; a key that then changes is refused even so.
    code, row = run(stranger, "node-3", ["--accept-new-host-keys", "--no-verify"])
    assert code == 0 and row["ok"], row
    assert f"[127.0.0.1]:{stranger.port}" in known_hosts.read_text()
    known_hosts.write_text(known_hosts.read_text().replace(
        stranger.public_key, first.public_key))
    code, row = run(stranger, "node-3", ["--accept-new-host-keys", "--no-verify"])
    assert code == 1 and "changed" in row["detail"], row
