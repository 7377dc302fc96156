"""What bootstrapping an agent does on one host, as argv lists and file contents (pure: it can
be reviewed, printed by --dry-run and tested without a host).

Everything goes through a private upload directory (`mktemp -d`, mode 0700, removed at the end):
the wheelhouse for the host's Python, the agent's settings (broker URL: mode 0600), the agent's
message key (0600) and the trusted certificates, the operator's public key and the unit. The
install is offline and hash-checked (`pip install --no-index --require-hashes`). Every step is
idempotent: a second run installs the same files and restarts the agent on them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from kubeupgrade.errors import InvalidInput
from kubeupgrade.workflow.names import valid_node_name

UNIT = "kubeupgrade-agent.service"
_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.:_\[\]-]+?)(?::(?P<port>\d+))?"
                     r"=(?P<node>.+)$")


@dataclass(frozen=True)
class Target:
    """One host to bootstrap: [USER@]HOST[:PORT]=NODE."""

    host: str
    node: str
    user: str = "root"
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> Target:
        found = _TARGET.match(text)
        if not found:
            raise InvalidInput(f"{text!r}: expected [USER@]HOST[:PORT]=NODE")
        node = found["node"]
        if not valid_node_name(node):
            raise InvalidInput(f"{text!r}: {node!r} is not a valid node name")
        port = int(found["port"] or 22)
        if not 0 < port < 65536:
            raise InvalidInput(f"{text!r}: port {port} is out of range")
        return cls(found["host"], node, found["user"] or "root", port)

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Layout:
    """Where things go on the host; `root` is "/" on a real host (another directory only to
    rehearse, as the tests do with throwaway hosts)."""

    root: str = "/"

    def at(self, path: str) -> str:
        return str(PurePosixPath(self.root) / path.lstrip("/"))

    @property
    def venv(self) -> str:
        return self.at("/opt/kubeupgrade")

    @property
    def etc(self) -> str:
        return self.at("/etc/kubeupgrade")

    @property
    def unit(self) -> str:
        return self.at(f"/etc/systemd/system/{UNIT}")


def agent_env(layout: Layout, node: str, broker: str) -> str:
    """/etc/kubeupgrade/agent.env: the node, the broker (with its password: the file is 0600),
    the message identity and the trusted keys."""
    if "\n" in broker or not broker.startswith(("redis://", "rediss://")):
        raise InvalidInput("the broker file must hold one redis:// or rediss:// URL")
    etc = layout.etc
    return (f"KUBEUPGRADE_NODE={node}\nKUBEUPGRADE_BROKER={broker}\n"
            f"KUBEUPGRADE_MESSAGE_KEY={etc}/messages/agent.key\n"
            f"KUBEUPGRADE_MESSAGE_CERT={etc}/messages/agent.pem\n"
            f"KUBEUPGRADE_MESSAGE_TRUST={etc}/messages/trusted\n"
            f"KUBEUPGRADE_TRUSTED={etc}/trusted\n")


def unit_text(shipped: str, layout: Layout) -> str:
    """deploy/systemd's unit, its paths moved under the layout's root."""
    return (shipped.replace("/opt/kubeupgrade", layout.venv)
            .replace("/etc/kubeupgrade", layout.etc))


def remote_steps(layout: Layout, upload: str, trusted_certs: list[str], operator_key: str,
                 python: str = "python3") -> list[list[str]]:
    """The argv lists run on the host once `upload` holds the files, in order."""
    etc, venv = layout.etc, layout.venv
    return [
        ["install", "-d", "-m", "0755", etc, f"{etc}/trusted", f"{etc}/messages",
         f"{etc}/messages/trusted", str(PurePosixPath(layout.unit).parent)],
        ["install", "-m", "0644", f"{upload}/{operator_key}", f"{etc}/trusted/{operator_key}"],
        ["install", "-m", "0600", f"{upload}/agent.key", f"{etc}/messages/agent.key"],
        ["install", "-m", "0644", f"{upload}/agent.pem", f"{etc}/messages/agent.pem"],
        *[["install", "-m", "0644", f"{upload}/trusted-{name}", f"{etc}/messages/trusted/{name}"]
          for name in trusted_certs],
        ["install", "-m", "0600", f"{upload}/agent.env", f"{etc}/agent.env"],
        [python, "-m", "venv", venv],
        [f"{venv}/bin/pip", "install", "--quiet", "--no-index", "--find-links", f"{upload}/wheels",
         "--require-hashes", "-r", f"{upload}/wheels/requirements.txt"],
        ["install", "-m", "0644", f"{upload}/{UNIT}", layout.unit],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", UNIT],
        # restart, not start: a second bootstrap must run the agent it just installed.
        ["systemctl", "restart", UNIT],
    ]


def shell(argv: list[str], sudo: bool = False) -> str:
    """The one place an argv list becomes a string: SSH runs a command line."""
    return shlex.join(["sudo", "-n", *argv] if sudo else argv)
