"""The error hierarchy of kubeupgrade and its exit codes.

Every error a user can cause or meet is one of these. The CLI maps them to exit codes in one place
(`kubeupgrade.cli.exitcodes`); business code raises, it never calls `sys.exit`.
"""

from __future__ import annotations

import sys

# `typing` itself is not imported at run time (it is a tenth of a simulated command's start);
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:  # imported by every simulated host command: only what it runs
    from collections.abc import Callable


class KubeupgradeError(Exception):
    """Base class. `str(error)` is a single line that tells the user what to do."""

    exit_code = 1


class InvalidInput(KubeupgradeError, ValueError):
    """The user gave us something we cannot use: a file, a key, a version, a node name."""

    exit_code = 2


class PolicyRefused(KubeupgradeError):
    """The input is well-formed but the plan breaks a version-skew or upgrade-path rule."""

    exit_code = 3


class RuntimeFailure(KubeupgradeError):
    """Something failed while running: a host command, the API server, the broker."""

    exit_code = 1


class TemporaryError(RuntimeFailure):
    """A failure worth retrying with backoff: a lock held, the API server restarting, a 429."""


class PermanentError(RuntimeFailure):
    """A failure retrying will not fix: a missing package version, a refused policy."""


def not_utf8(error: UnicodeDecodeError) -> str:
    """What to say of a file that is not UTF-8 text: the first byte that is not, and where."""
    return f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})"


def run_entry_point(body: Callable[[], object]) -> int:
    """The exit status of a program outside the click CLI (the node agent, the sandbox's agent
    farm): 0, or a KubeupgradeError's one line on stderr and its exit code, or 130 on Ctrl-C."""
    try:
        body()
    except KubeupgradeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 0
