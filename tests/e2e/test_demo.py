"""`make demo` as a new operator meets it: it names every invariant it checked, the commands it
prints work as printed, a --keep demo is stopped whole by --down, and Ctrl-C ends it with 130,
no traceback and nothing left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEMO = [sys.executable, "-m", "kubeupgrade.demo"]
INVARIANTS = ("workers out of service", "control planes one at a time",
              "kubeadm upgrade apply once per version", "no worker before the control planes",
              "one mutating command per host at a time", "nothing left cordoned")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBEUPGRADE_BROKER"}
    env["COLUMNS"] = "160"
    return env


def _running_under(directory: Path) -> list[int]:
    """Processes whose working directory is inside `directory` (every process a demo starts)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                with open(f"/proc/{entry}/stat") as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            if cwd.startswith(str(directory)):
                found.append(int(entry))
    return found


def _kill_leftovers(directory: Path) -> None:
    """What a failed run left (without --keep there is no pids.txt for --down to read)."""
    for pid in _running_under(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _gone(directory: Path, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _running_under(directory)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_a_kept_demo_names_its_invariants_its_printed_commands_work_and_down_stops_it_all(tmp_path):
    directory = tmp_path / "demo"
    run = subprocess.run([*DEMO, "--keep", "--workers", "2", "--dir", str(directory)],
                         capture_output=True, text=True, timeout=300, env=_env())
    try:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "Traceback" not in run.stdout + run.stderr
        for name in INVARIANTS:
            assert re.search(rf"^  {re.escape(name)}\s.*\bheld$", run.stdout, re.M), (name, run.stdout)
        assert re.search(r"^Campaign succeeded in \d+s", run.stdout, re.M), run.stdout
        status_command = re.search(r"^Campaign\s+\S+\s+\((.+ status \S+ --broker \S+)\)$", run.stdout, re.M)
        assert status_command, run.stdout
        status = subprocess.run(status_command.group(1).split(), capture_output=True, text=True,
                                timeout=60, env=_env())
        assert status.returncode == 0 and "SUCCEEDED" in status.stdout, status.stdout + status.stderr
        assert _running_under(directory), "a --keep demo left nothing running"
        stop_command = re.search(r"Stop everything with: (.+)$", run.stdout, re.M)
        assert stop_command, run.stdout
        down = subprocess.run(stop_command.group(1).split(), capture_output=True, text=True,
                              timeout=120, env=_env())
        assert down.returncode == 0, down.stderr
        for what in ("redis", "controller", "flower", "agent-", "API server"):
            assert what in down.stdout, (what, down.stdout)
        assert _gone(directory) == []
    finally:
        subprocess.run([*DEMO, "--down", "--dir", str(directory)], capture_output=True, timeout=120)


@pytest.mark.parametrize("presses", [1, 2], ids=["once", "again-while-it-stops"])
def test_ctrl_c_exits_130_without_a_traceback_and_stops_everything(tmp_path, presses):
    """A second Ctrl-C while the demo stops what it started does not cut the clean-up short."""
    directory = tmp_path / "demo"
    demo = subprocess.Popen([*DEMO, "--workers", "2", "--dir", str(directory)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())
    seen = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # interrupt once the campaign is under way
            seen.append(line)
            if line.startswith("Campaign "):
                break
        assert _running_under(directory), "".join(seen)
        demo.send_signal(signal.SIGINT)
        if presses == 2:
            for line in demo.stdout:  # and again once it says it is stopping
                seen.append(line)
                if line.startswith("interrupted"):
                    break
            demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
        output = "".join(seen) + rest
        assert demo.returncode == 130, output
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
        assert _gone(directory) == [], output
    finally:
        if demo.poll() is None:
            demo.kill()
        subprocess.run([*DEMO, "--down", "--dir", str(directory)], capture_output=True, timeout=120)
        _kill_leftovers(directory)
