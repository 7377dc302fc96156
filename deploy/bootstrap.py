"""Bootstrap kubeupgrade agents on hosts over SSH (fabric).

    python deploy/bootstrap.py --wheel dist/kubeupgrade-*.whl --broker-file broker.url \\
        --trusted-key ~/.config/kubeupgrade/operator.pub --messages /secure/messages \\
        root@cp-1.example.org=cp-1 root@worker-1.example.org=worker-1 ...

For each HOST=NODE: copies the wheel, installs it into /opt/kubeupgrade, writes
/etc/kubeupgrade/agent.env, installs the operator's public key into /etc/kubeupgrade/trusted
(the agent runs only campaigns it signed), installs the agent's message key and the trusted
certificates (of `kubeupgrade keys messages`) into /etc/kubeupgrade/messages, installs and
starts the systemd unit. Commands are argv lists,
quoted only here, at the SSH boundary.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def remote_steps(wheel_name: str, node: str, broker: str, key_name: str,
                 trusted_certs: list[str]) -> list[list[str]]:
    """The argv lists run on each host, in order (pure, so it can be reviewed and tested)."""
    return [
        ["mkdir", "-p", "/opt/kubeupgrade", "/etc/kubeupgrade"],
        ["install", "-D", "-m", "0644", "-o", "root", "-g", "root", "/tmp/kubeupgrade-operator.pub",
         f"/etc/kubeupgrade/trusted/{key_name}"],
        ["install", "-D", "-m", "0600", "-o", "root", "-g", "root", "/tmp/kubeupgrade-agent.key",
         "/etc/kubeupgrade/messages/agent.key"],
        ["install", "-D", "-m", "0644", "/tmp/kubeupgrade-agent.pem", "/etc/kubeupgrade/messages/agent.pem"],
        *[["install", "-D", "-m", "0644", f"/tmp/kubeupgrade-trusted-{name}",
           f"/etc/kubeupgrade/messages/trusted/{name}"] for name in trusted_certs],
        ["rm", "-f", "/tmp/kubeupgrade-agent.key"],
        ["python3", "-m", "venv", "/opt/kubeupgrade"],
        ["/opt/kubeupgrade/bin/pip", "install", "--quiet", f"/tmp/{wheel_name}"],
        ["install", "-m", "0600", "/tmp/kubeupgrade-agent.env", "/etc/kubeupgrade/agent.env"],
        ["install", "-m", "0644", "/tmp/kubeupgrade-agent.service",
         "/etc/systemd/system/kubeupgrade-agent.service"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "kubeupgrade-agent.service"],
    ]


def agent_env(node: str, broker: str) -> str:
    return (f"KUBEUPGRADE_NODE={node}\nKUBEUPGRADE_BROKER={broker}\n"
            "KUBEUPGRADE_MESSAGE_KEY=/etc/kubeupgrade/messages/agent.key\n"
            "KUBEUPGRADE_MESSAGE_CERT=/etc/kubeupgrade/messages/agent.pem\n"
            "KUBEUPGRADE_MESSAGE_TRUST=/etc/kubeupgrade/messages/trusted\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--broker-file", required=True, type=Path,
                        help="a file holding the agents' broker URL (keeps the password off argv)")
    parser.add_argument("--trusted-key", required=True, type=Path,
                        help="the operator's public key (`kubeupgrade keys create` makes it)")
    parser.add_argument("--messages", required=True, type=Path,
                        help="the directory `kubeupgrade keys messages` made (agent.key, agent.pem, trusted/)")
    parser.add_argument("hosts", nargs="+", metavar="HOST=NODE")
    args = parser.parse_args(argv)
    from fabric import Connection

    broker = args.broker_file.read_text().strip()
    trusted = sorted((args.messages / "trusted").glob("*.pem"))
    for item in args.hosts:
        host, _, node = item.partition("=")
        if not node:
            parser.error(f"{item!r}: expected HOST=NODE")
        with Connection(host) as connection:
            connection.put(str(args.wheel), f"/tmp/{args.wheel.name}")
            env = HERE / f".agent-{node}.env"
            env.write_text(agent_env(node, broker))
            try:
                connection.put(str(env), "/tmp/kubeupgrade-agent.env")
            finally:
                env.unlink()
            connection.put(str(HERE / "systemd/kubeupgrade-agent.service"), "/tmp/kubeupgrade-agent.service")
            connection.put(str(args.trusted_key), "/tmp/kubeupgrade-operator.pub")
            connection.put(str(args.messages / "agent.key"), "/tmp/kubeupgrade-agent.key")
            connection.put(str(args.messages / "agent.pem"), "/tmp/kubeupgrade-agent.pem")
            for cert in trusted:
                connection.put(str(cert), f"/tmp/kubeupgrade-trusted-{cert.name}")
            for step in remote_steps(args.wheel.name, node, broker, args.trusted_key.name,
                                     [cert.name for cert in trusted]):
                connection.run(shlex.join(step), hide=True)
        print(f"{host}: agent for {node} running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
