"""`kubeupgrade sandbox ...`: up (and up again), status, faults, down; bad input exits 2."""

import json
import os
import subprocess
import sys

from kubeupgrade.sandbox.manager import Sandbox, _alive


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "kubeupgrade", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ})


def test_up_status_fault_down(tmp_path):
    directory = str(tmp_path / "sb")
    up = cli("sandbox", "up", "--dir", directory, "--control-planes", "1", "--workers", "2", "--os", "dnf")
    try:
        assert up.returncode == 0, up.stderr
        assert f"kubeconfig: {tmp_path / 'sb' / 'kubeconfig'}" in up.stdout
        assert "worker-2  worker         dnf   Ready" in up.stdout
        pid = Sandbox(directory).api_pid()
        assert pid and _alive(pid)
        again = cli("sandbox", "up", "--dir", directory, "--workers", "7")
        assert again.returncode == 0
        assert "is already up" in again.stderr and "nothing changed" in again.stderr
        assert len(Sandbox(directory).nodes) == 3
        status = json.loads(cli("sandbox", "status", "--dir", directory, "-o", "json").stdout)
        assert status["apiserver_pid"] == pid and len(status["nodes"]) == 3
        fault_id = cli("sandbox", "fault", "add", "--dir", directory, "--kind", "fail",
                       "--node", "worker-1", "--command", "kubeadm upgrade node").stdout.strip()
        listing = cli("sandbox", "fault", "list", "--dir", directory).stdout
        assert fault_id in listing and "kubeadm upgrade node" in listing
        assert cli("sandbox", "fault", "clear", "--dir", directory, "--id", fault_id).stdout.strip() == "cleared 1"
        bad = cli("sandbox", "fault", "clear", "--dir", directory, "--id", "nope")
        assert bad.returncode == 2 and "no fault with id 'nope'" in bad.stderr
    finally:
        down = cli("sandbox", "down", "--dir", directory)
    assert down.returncode == 0 and f"stopped 1 process(es): {pid}" in down.stdout
    assert not _alive(pid)
    status = cli("sandbox", "status", "--dir", directory)
    assert status.returncode == 1 and "is not running" in status.stderr


def test_bad_input_exits_2_and_creates_nothing(tmp_path):
    for args, message in [
        (["--version", "1.30.99"], "--version 1.30.99: not a release the sandbox repository holds (1.30.0 to 1.30.14)"),
        (["--version", "1.40.1"], "not a release the sandbox repository holds (minors 1.28 to 1.34)"),
        (["--version", "latest"], "'latest' is not a Kubernetes version"),
        (["--control-planes", "0"], "--control-planes 0: a cluster needs at least one"),
        (["--os", "zypper"], "Invalid value for '--os'"),
    ]:
        result = cli("sandbox", "up", "--dir", str(tmp_path / "x"), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "x" / "sandbox.json").exists()
