"""At most one command on a host at a time, with real processes: a command that outlives its
killed agent keeps the host lock, and the next command waits for it instead of running beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kubeupgrade.host.executor import Command, HostBusy, LocalExecutor

pytestmark = pytest.mark.integration

# A stand-in agent: runs one long command through the executor, then is SIGKILLed mid-command.
AGENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kubeupgrade.host.executor import Command, LocalExecutor
    LocalExecutor(lock_file=Path(sys.argv[1])).run(Command(("sh", "-c", sys.argv[2]), timeout=60))
""")


def stamp_command(log, seconds):
    """A root-command stand-in that logs its start and end times."""
    return f"echo start $(date +%s.%N) >> {log}; sleep {seconds}; echo end $(date +%s.%N) >> {log}"


def read_spans(log):
    marks = [line.split() for line in log.read_text().splitlines()]
    return [float(t) for kind, t in marks if kind == "start"], [float(t) for kind, t in marks if kind == "end"]


def test_a_command_left_running_by_a_killed_agent_keeps_the_host_locked(tmp_path):
    lock, log = tmp_path / "var/lib/kubeupgrade/host.lock", tmp_path / "log"
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(lock), stamp_command(log, 1.5)],
                             start_new_session=True)
    deadline = time.monotonic() + 10
    while not log.exists():
        assert time.monotonic() < deadline, "the first command never started"
        time.sleep(0.02)
    os.killpg(agent.pid, signal.SIGKILL)  # the agent dies; its command runs on in its own session
    agent.wait()
    second = LocalExecutor(lock_file=lock).run(Command(("sh", "-c", stamp_command(log, 0)), timeout=10))
    assert second.ok
    starts, ends = read_spans(log)
    assert len(starts) == 2 and len(ends) == 2
    assert starts[1] >= ends[0], "the second command started while the orphaned one still ran"


def test_a_host_held_too_long_fails_the_step_naming_the_holder(tmp_path):
    lock, log = tmp_path / "host.lock", tmp_path / "log"
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(lock), stamp_command(log, 3)],
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not log.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(HostBusy) as busy:
            LocalExecutor(lock_file=lock, lock_wait=0.5).run(Command(("true",), timeout=5))
        assert f"pid {agent.pid}" in str(busy.value) and "sleep 3" in str(busy.value)
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()


def test_a_timed_out_command_is_killed_with_what_it_started(tmp_path):
    log = tmp_path / "log"
    result = LocalExecutor(lock_file=tmp_path / "host.lock").run(
        Command(("sh", "-c", f"(sleep 1; echo late >> {log}) & sleep 5"), timeout=0.3))
    assert result.timed_out
    time.sleep(1.5)
    assert not log.exists(), "a process started by the timed-out command kept running"


def test_the_lock_names_only_its_last_holder_however_long_the_one_before(tmp_path):
    lock = tmp_path / "host.lock"
    executor = LocalExecutor(lock_file=lock)
    executor.run(Command(("echo", "x" * 2000), timeout=5))
    assert lock.stat().st_size == 512  # a longer command is cut, not spilled past the record
    executor.run(Command(("true",), timeout=5))
    assert lock.read_text().strip() == f"pid {os.getpid()}: true"
