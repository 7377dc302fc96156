"""The one place that maps errors to exit codes and one-line messages.

0 success, 1 runtime failure, 2 invalid input, 3 plan refused by policy (README, "Exit codes").
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TextIO

import click

from kubeupgrade.cli.terminal import printable
from kubeupgrade.errors import KubeupgradeError

OK = 0
RUNTIME_FAILURE = 1
INVALID_INPUT = 2
POLICY_REFUSED = 3


def report(error: BaseException, stream: TextIO | None = None) -> int:
    """Print `error` as one line on stderr and return its exit code. Never a traceback,
    unless KUBEUPGRADE_DEBUG is set."""
    stream = stream or sys.stderr
    if os.environ.get("KUBEUPGRADE_DEBUG"):
        traceback.print_exception(error, file=stream)
    if isinstance(error, KubeupgradeError):  # may quote the record, a host's output, a file
        print(f"error: {printable(error)}", file=stream)
        return error.exit_code
    if isinstance(error, click.exceptions.UsageError):
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        print(f"error: {error.format_message()}{hint}", file=stream)
        return INVALID_INPUT
    if isinstance(error, click.exceptions.ClickException):
        print(f"error: {error.format_message()}", file=stream)
        return INVALID_INPUT
    message = printable(str(error).splitlines()[0]) if str(error) else type(error).__name__
    print(f"error: unexpected {type(error).__name__}: {message} "
          "(set KUBEUPGRADE_DEBUG=1 for details)", file=stream)
    return RUNTIME_FAILURE
