"""The node owner's say over hooks: with `kubeupgrade-agent --hooks-allowlist FILE`, a hook runs
only if its argv begins with one of the prefixes the file lists, whoever signed the campaign.

The file: one prefix per line, words split as a POSIX shell would (`/usr/local/bin/drain-check`
or `systemctl restart my-exporter`); blank lines and lines starting with # are ignored. A prefix
matches whole words only: `systemctl restart` allows `systemctl restart x`, not
`systemctl restart-all` nor `systemctl stop x`.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from kubeupgrade.errors import InvalidInput, not_utf8
from kubeupgrade.security.signing import Unauthorized

ALLOWLIST_ENV = "KUBEUPGRADE_HOOKS_ALLOWLIST"


def load_allowlist(path: Path) -> list[tuple[str, ...]]:
    """The prefixes in `path`; InvalidInput naming the line that cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"--hooks-allowlist {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"--hooks-allowlist {path}: {not_utf8(error)}") from None
    prefixes = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = tuple(shlex.split(line))
        except ValueError as error:
            raise InvalidInput(f"{path}, line {number}: {error}") from None
        prefixes.append(words)
    return prefixes


def allowed(argv: tuple[str, ...], prefixes: list[tuple[str, ...]]) -> bool:
    return any(len(prefix) <= len(argv) and tuple(argv[:len(prefix)]) == prefix for prefix in prefixes)


def check_hooks(hooks: list[tuple[str, ...]], path: Path | None = None) -> None:
    """Unauthorized (nothing runs) if an allowlist is set and any of `hooks` is outside it."""
    chosen = path or (Path(os.environ[ALLOWLIST_ENV]) if os.environ.get(ALLOWLIST_ENV) else None)
    if chosen is None:
        return
    prefixes = load_allowlist(chosen)
    refused = [argv for argv in hooks if not allowed(argv, prefixes)]
    if refused:
        raise Unauthorized(f"hook `{shlex.join(refused[0])}` is not in this node's allowlist "
                           f"{chosen}; no hook run")
