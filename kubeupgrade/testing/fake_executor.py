"""An expectation-table executor: answers commands from a table; an unexpected command fails the
test loudly instead of touching anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kubeupgrade.host.executor import Command, CommandResult

Answer = tuple[int, str, str] | Callable[[Command], tuple[int, str, str]]


class UnexpectedCommand(AssertionError):
    pass


@dataclass
class FakeExecutor:
    """`answers` maps an argv prefix (tuple) to (exit code, stdout, stderr) or a function.

    The longest matching prefix wins. Every command run is kept in `ran`, in order.
    """

    answers: dict[tuple[str, ...], Answer] = field(default_factory=dict)
    ran: list[tuple[str, ...]] = field(default_factory=list)

    def on(self, *argv: str, exit_code: int = 0, stdout: str = "", stderr: str = "") -> FakeExecutor:
        self.answers[tuple(argv)] = (exit_code, stdout, stderr)
        return self

    def run(self, command: Command) -> CommandResult:
        self.ran.append(command.argv)
        matches = [prefix for prefix in self.answers if command.argv[: len(prefix)] == prefix]
        if not matches:
            raise UnexpectedCommand(f"unexpected command: {command}")
        answer = self.answers[max(matches, key=len)]
        code, out, err = answer(command) if callable(answer) else answer
        return CommandResult(command, code, out, err)
