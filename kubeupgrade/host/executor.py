"""The single seam through which kubeupgrade runs commands on a host.

`Command` is an argv list (never a shell string) with a timeout; `CommandResult` is what came
back. `LocalExecutor` runs commands on this host with subprocess (the only subprocess user in
the orchestrator); `kubeupgrade.testing.FakeExecutor` answers from a table for unit tests.

At most one command runs on a host at a time, whoever started it: `LocalExecutor` holds an
exclusive flock on the host lock file for each command and hands the locked descriptor to the
command itself. The lock is released only when both the agent and the command have let go, so a
command that outlives a killed agent (it runs in its own session) keeps the host locked, and the
redelivered task waits for it to finish instead of starting a second root command beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubeupgrade.errors import TemporaryError

# An exclusive lock on `fd` if no other descriptor holds one: True, or False at once.
if sys.platform != "win32":
    import fcntl

    def try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
else:  # Windows: a byte-range lock; a command cannot inherit it, so it holds while we wait
    import msvcrt

    def try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

TAIL_LINES = 20
# What every command's environment says, whatever the agent inherited:
COMMAND_ENVIRONMENT = {
    # Tools answer in the C locale, whatever the host's (systemd hands a service the LANG of
    # /etc/locale.conf): the refusals the agents recognise ("Unable to locate package", "dpkg
    # was interrupted") are matched in English.
    "LC_ALL": "C",
    # No package asks a question: nobody is there to answer it.
    "DEBIAN_FRONTEND": "noninteractive",
    # needrestart (Ubuntu's apt hook) lists the services that use replaced libraries and
    # restarts none: on its own (Ubuntu 24.04) it would restart them in our apt run, on a node
    # still in service, which no operator asked for.
    "NEEDRESTART_MODE": "l",
}


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    timeout: float = 120.0
    stdin: str = ""
    # Only looks at the host (a version, a listing, a state): it may run without the phase's
    # fence (context.HostContext.changing). Anything else counts as a change.
    reads_only: bool = False

    def __post_init__(self) -> None:
        if not self.argv or not all(isinstance(arg, str) and arg for arg in self.argv):
            raise ValueError(f"a command is a non-empty list of non-empty strings, got {self.argv!r}")

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class CommandResult:
    command: Command
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of stdout and stderr, for status output and error messages."""
        text = (self.stdout.rstrip("\n") + "\n" + self.stderr.rstrip("\n")).strip("\n")
        return "\n".join(text.splitlines()[-lines:])


class Executor(Protocol):
    def run(self, command: Command) -> CommandResult: ...


class HostBusy(TemporaryError):
    """Another command still holds the host lock after the wait; names who holds it."""


@dataclass
class LocalExecutor:
    """Runs argv lists on this host. `path_prefix` directories come first on PATH (the sandbox's
    simulated binaries live there); no shell is ever involved. With `lock_file`, every command
    holds the host lock (see the module docstring) and waits up to `lock_wait` seconds for it
    (default: the command's own timeout plus a minute, the most an earlier one should run)."""

    path_prefix: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    lock_file: Path | None = None
    lock_wait: float | None = None
    _held: tuple[int, ...] | None = field(default=None, init=False, repr=False)

    @contextmanager
    def exclusive(self, what: str, timeout: float) -> Iterator[None]:
        """Hold the host lock for a change the agent makes itself (a file it replaces) and the
        commands run meanwhile, as one: no other command starts in between."""
        if self._held is not None:
            yield
            return
        with self._host_lock(Command((what,), timeout)) as held:
            self._held = held
            try:
                yield
            finally:
                self._held = None

    def run(self, command: Command) -> CommandResult:
        holding = nullcontext(self._held) if self._held is not None else self._host_lock(command)
        with holding as held:
            return self._execute(command, held)

    def _execute(self, command: Command, held: tuple[int, ...]) -> CommandResult:
        """Run the command while the host lock is `held` (its descriptor, handed to the command)."""
        env = {**os.environ, **COMMAND_ENVIRONMENT, **self.extra_env}
        if self.path_prefix:
            env["PATH"] = os.pathsep.join([*self.path_prefix, env.get("PATH", "")])
        started = time.monotonic()
        try:
            child = subprocess.Popen(
                list(command.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                # what a tool prints is read as UTF-8, any other byte replaced: a Latin-1 line
                # from a mirror is shown, not raised as an error that hides the command's result
                stderr=subprocess.PIPE, encoding="utf-8", errors="replace", env=env, shell=False,
                start_new_session=True, pass_fds=held if os.name == "posix" else ())
        except FileNotFoundError:
            return CommandResult(command, 127, "", f"{command.argv[0]}: command not found",
                                 time.monotonic() - started)
        try:
            stdout, stderr = child.communicate(command.stdin, timeout=command.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(child)  # the command and whatever it started
            stdout, stderr = child.communicate()
            return CommandResult(command, -1, _text(stdout), _text(stderr),
                                 time.monotonic() - started, timed_out=True)
        return CommandResult(command, child.returncode, stdout, stderr,
                             time.monotonic() - started)

    @contextmanager
    def _host_lock(self, command: Command) -> Iterator[tuple[int, ...]]:
        if self.lock_file is None:
            yield ()
            return
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            wait = self.lock_wait if self.lock_wait is not None else command.timeout + 60
            deadline = time.monotonic() + wait
            while not try_lock(fd):
                if time.monotonic() > deadline:
                    raise HostBusy(f"another command still runs on this host after {wait:g}s "
                                   f"({_holder(self.lock_file)}); it must end before "
                                   f"`{command}` may start") from None
                time.sleep(0.05)
            if os.name == "posix":  # who holds it, for the message above (Windows locks byte 0)
                os.pwrite(fd, _holder_record(f"pid {os.getpid()}: {command}"), 0)
            yield (fd,)
        finally:
            os.close(fd)


HOLDER_RECORD = 512


def _holder_record(text: str) -> bytes:
    """Who holds the lock, as a record of one fixed size: it overwrites the last holder's in
    place. Truncating the file first cost ~0.3 ms per command alone and far more under load (on
    ext4 with `discard`, every truncate frees a block); it was a sixth of the agent farm's
    samples at 1,000 nodes."""
    line = text.encode(errors="replace")[:HOLDER_RECORD - 1]
    return line.ljust(HOLDER_RECORD - 1) + b"\n"


def _holder(lock_file: Path) -> str:
    try:
        return "last taken by " + lock_file.read_text().strip()[:200]
    except OSError:
        return "holder unknown"


def _kill_group(child: subprocess.Popen) -> None:
    if os.name != "posix":
        child.kill()
        return
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
