"""What every host step works with: the host (its executor, root and platform), the outcome a
step reports, the errors a failed command raises, and the markers that record effects leaving no
other trace. Shared by the generic steps (`steps`) and the host platforms (`platforms`)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.host.executor import Command, CommandResult, Executor
from kubeupgrade.host.files import replace_file
from kubeupgrade.host.unreachable_api import is_api_client, outage_cause
from kubeupgrade.model.campaign import OsFamily

if TYPE_CHECKING:
    from kubeupgrade.host.platforms.base import HostPlatform

log = logging.getLogger("kubeupgrade.host")

DONE = "done"
ALREADY_DONE = "already-done"


class HostCommandFailed(TemporaryError):
    """A host command failed; carries the argv, exit code and output tail. Retryable."""

    def __init__(self, result: CommandResult, what: str) -> None:
        self.result = result
        code = "timed out" if result.timed_out else f"exit {result.exit_code}"
        tail = result.tail(5).replace("\n", " | ")
        super().__init__(f"{what}: `{result.command}` failed ({code}): {tail}")
        # A client of the API server that failed only because it did not answer: retried for
        # the campaign's API outage tolerance (workflow/phase.py), not counted as an attempt.
        self.api_outage = (outage_cause(result.stderr, result.stdout)
                           if not result.timed_out and is_api_client(result.command.argv) else None)


class HostCommandRefused(PermanentError):
    """A host command failed in a way retrying cannot fix (a version missing from the repo)."""

    def __init__(self, result: CommandResult, what: str) -> None:
        self.result = result
        tail = result.tail(5).replace("\n", " | ")
        super().__init__(f"{what}: `{result.command}` failed (exit {result.exit_code}): {tail}")


@dataclass(frozen=True)
class StepOutcome:
    status: str  # DONE or ALREADY_DONE
    detail: str
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class HostContext:
    executor: Executor
    root: Path
    family: OsFamily
    campaign: str = ""
    hop: int = 0
    transcript: list[CommandResult] = field(default_factory=list)
    # Raises when the task no longer owns its phase (phase.Job.fence); asked before each command.
    fence: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)  # what the step's output says besides its commands

    @property
    def platform(self) -> HostPlatform:
        from kubeupgrade.host.platforms import platform_for

        return platform_for(self.family)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def run(self, command: Command | None, what: str, *, check: bool = True) -> CommandResult | None:
        if command is None:
            return None
        if self.fence is None or command.reads_only:
            result = self.executor.run(command)
        else:
            with self.changing(str(command), command.timeout):
                result = self.executor.run(command)
        self.transcript.append(result)
        if check and not result.ok:
            if _is_permanent(result, self.platform.refusals):
                raise HostCommandRefused(result, what)
            raise HostCommandFailed(result, what)
        return result

    @contextmanager
    def exclusive(self, what: str, timeout: float) -> Iterator[None]:
        """Hold the host lock across several commands and the agent's own file changes between
        them (an executor without a lock, such as the unit tests' fake, holds nothing)."""
        hold = getattr(self.executor, "exclusive", None)
        if hold is None:
            yield
            return
        with hold(what, timeout):
            yield

    @contextmanager
    def changing(self, what: str, timeout: float) -> Iterator[None]:
        """Hold the host lock for a command or a change the agent makes itself, once the fence
        says the task still owns its phase. Asked with the lock held: a task that froze and was
        sent again may wake to wait for the lock behind the task that superseded it, and must
        not act after it (a second `kubeadm upgrade apply`, a kubelet restarted on a node back
        in service, a repository file written again after an abort put it back)."""
        with self.exclusive(what, timeout):
            if self.fence is not None:
                self.fence()
            yield

    def output(self) -> str:
        return "\n".join([*(f"# {note}" for note in self.notes),
                          *(f"$ {r.command}\n{r.tail(40)}" for r in self.transcript)])

    # -- markers: the effect of a step that leaves no other trace we can read locally ---------
    def _marker(self, phase: str) -> Path:
        safe = "".join(c for c in f"{self.campaign}-{self.hop}-{phase}" if c.isalnum() or c in "-_.")
        return self.path(f"/var/lib/kubeupgrade/markers/{safe}")

    def marked(self, phase: str) -> dict[str, Any] | None:
        """What the step `phase` recorded when it last did its work here; None if it did not.
        A marker that is not a JSON object (cut short by a crash, edited by hand, a directory
        in its place) counts as absent: the step then checks and does its work again, which
        every marked step may (kubeadm's upgrade commands are idempotent, the others look at
        their effect first). It is named in the step's output and set aside as NAME.damaged,
        so it is read neither again nor instead of the marker the step writes next."""
        marker = self._marker(phase)
        try:
            data: Any = json.loads(marker.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            data = error
        if isinstance(data, dict):
            return data
        what = (f"{type(data).__name__}: {data}" if isinstance(data, Exception)
                else f"not a JSON object: {json.dumps(data)[:60]}")
        aside = marker.with_name(marker.name + ".damaged")
        try:
            os.replace(marker, aside)
            where = f"set aside as {aside.name}"
        except OSError as error:
            where = f"could not be set aside ({error})"
        note = f"marker {marker} is damaged ({what[:120]}); ignored, {where}; the step checks its effect again"
        log.warning("%s", note)
        self.notes.append(note)
        return None

    def unmark(self, phase: str) -> None:
        self._marker(phase).unlink(missing_ok=True)

    def mark(self, phase: str, **data: Any) -> None:
        marker = self._marker(phase)
        marker.parent.mkdir(parents=True, exist_ok=True)
        replace_file(marker, json.dumps({"at": time.time(), **data}).encode(), mode=0o600)


# kubeadm's refusals of a version, in the words of its version skew policy (the platforms add
# their package managers' own): retrying the same command cannot get past them.
_KUBEADM_REFUSALS = ("is too high; kubeadm can upgrade only", "is too low; kubeadm can downgrade only",
                     "Such an upgrade is not supported", "can only be used to upgrade to Kubernetes version")


def _is_permanent(result: CommandResult, refusals: tuple[str, ...]) -> bool:
    text = result.stdout + result.stderr
    return not result.timed_out and any(pattern in text for pattern in _KUBEADM_REFUSALS + refusals)
