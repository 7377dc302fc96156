"""The single seam through which kubeupgrade runs commands on a host.

`Command` is an argv list (never a shell string) with a timeout; `CommandResult` is what came
back. `LocalExecutor` runs commands on this host with subprocess (the only subprocess user in
the orchestrator); `kubeupgrade.testing.FakeExecutor` answers from a table for unit tests.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Protocol

TAIL_LINES = 20


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    timeout: float = 120.0
    stdin: str = ""

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


@dataclass
class LocalExecutor:
    """Runs argv lists on this host. `path_prefix` directories come first on PATH (the sandbox's
    simulated binaries live there); no shell is ever involved."""

    path_prefix: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)

    def run(self, command: Command) -> CommandResult:
        env = {**os.environ, **self.extra_env}
        if self.path_prefix:
            env["PATH"] = os.pathsep.join([*self.path_prefix, env.get("PATH", "")])
        started = time.monotonic()
        try:
            completed = subprocess.run(
                list(command.argv), input=command.stdin, capture_output=True, text=True,
                timeout=command.timeout, env=env, shell=False, check=False,
                start_new_session=True)
        except subprocess.TimeoutExpired as expired:
            return CommandResult(command, -1, _text(expired.stdout), _text(expired.stderr),
                                 time.monotonic() - started, timed_out=True)
        except FileNotFoundError:
            return CommandResult(command, 127, "", f"{command.argv[0]}: command not found",
                                 time.monotonic() - started)
        return CommandResult(command, completed.returncode, completed.stdout, completed.stderr,
                             time.monotonic() - started)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
