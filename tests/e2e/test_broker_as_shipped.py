"""deploy/redis as shipped: redis-server runs the shipped configuration (TLS only, the default
user off, one ACL user per role) with only its port and paths changed, and a whole campaign
runs over rediss:// with every process connecting as its own role; then each role is refused
outside its rights, and no process carries a broker password on its command line."""

import json
import os
import socket
import subprocess
import sys
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
import redis

from kubeupgrade.api import submit
from kubeupgrade.sandbox import invariants
from tests.helpers import wait_for, write_campaign


def refused(client, *command):
    """True when Redis refuses `command` for want of permission (NOPERM)."""
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    return False


def test_a_campaign_over_tls_with_a_user_per_role_and_each_role_kept_to_its_rights(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt", flower=True,
                       secure_broker=True)
    box = stack.sandbox
    assert all(url.startswith("rediss://") for url in stack.broker_urls.values())
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    assert invariants.check_all(box, max_unavailable=1) == []
    clients = {role: redis.Redis.from_url(url) for role, url in stack.broker_urls.items()}
    # Nothing the campaign did was refused: each role's rights cover what it uses. (Flower is
    # refused what its inspect calls would send: control messages, and the writes around them.)
    denials = clients["admin"].execute_command("ACL", "LOG", "128")
    assert [d for d in denials if d[b"username"] != b"flower"] == [], denials
    assert all(d[b"object"] == b"publish" or b"pidbox" in d[b"object"] for d in denials), denials
    # Flower monitors with its read-only user: it saw the campaign's tasks.
    auth = b64encode(stack.flower_auth.encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{stack.flower_port}/api/tasks?limit=1000",
                                     headers={"Authorization": f"Basic {auth}"})

    def flower_saw_apply():
        with urllib.request.urlopen(request, timeout=5) as response:
            tasks = json.loads(response.read())
        return any(t["name"] == "kubeupgrade.node.kubeadm_upgrade_apply" for t in tasks.values())

    wait_for(flower_saw_apply, timeout=20)

    queue = "kubeupgrade.node.worker-1"
    flower = clients["flower"]
    assert flower.llen(queue) == 0 and flower.get(f"ku:c:{handle.id}") is not None
    for command in (("SET", f"ku:c:{handle.id}", "{}"), ("LPUSH", queue, "task"),
                    ("PUBLISH", "/0.celery.pidbox", "shutdown"), ("DEL", queue)):
        assert refused(flower, *command), f"flower may {command[0]}"
    for role in ("controller", "agent", "cli"):
        for command in (("FLUSHALL",), ("CONFIG", "SET", "appendonly", "no"), ("KEYS", "*"),
                        ("ACL", "SETUSER", role, "+@all"), ("SHUTDOWN",),
                        ("SET", "elsewhere", "1")):
            assert refused(clients[role], *command), f"{role} may {' '.join(command)}"
    # Agents take no remote control, and their user cannot even listen for it; no role of
    # ours may send a control message either.
    assert refused(clients["agent"], "SUBSCRIBE", "/0.celery.pidbox")
    for role in ("controller", "agent", "cli"):
        assert refused(clients[role], "PUBLISH", "/0.celery.pidbox", "shutdown"), f"{role} may PUBLISH"
        assert refused(clients[role], "LPUSH", "someone.reply.celery.pidbox", "x"), f"{role} may LPUSH"
    # The default user is off, and there is no plain-text port.
    port = int(stack.broker_urls["admin"].split("@", 1)[1].split(":")[1].split("/")[0])
    anonymous = redis.Redis.from_url(stack.broker_urls["admin"].replace(
        stack.broker_urls["admin"].split("@", 1)[0] + "@", "rediss://"))
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(b"PING\r\n")
        plain.settimeout(5)
        try:
            answer = plain.recv(100)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert b"PONG" not in answer
    # doctor, as the cli user over TLS: all green, and it says who it is.
    checked = subprocess.run([sys.executable, "-m", "kubeupgrade", "doctor", "-o", "json",
                              "--kubeconfig", str(stack.controller_kubeconfig)],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "KUBEUPGRADE_BROKER": stack.broker})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = {row["name"]: row for row in json.loads(checked.stdout)}
    assert found["broker TLS"]["detail"] == "rediss://" and found["broker user"]["detail"] == "connected as cli"
    assert found["agents verify messages"]["ok"]
    # No broker password on any command line (readable by every local user).
    passwords = {url.split("@", 1)[0].rsplit(":", 1)[1] for url in stack.broker_urls.values()}
    for name, process in stack.processes.items():
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
        assert not any(p in cmdline for p in passwords), f"{name} has a broker password on its command line"
