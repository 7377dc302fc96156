"""Replacing a file on a host in one step.

The agents change a few files themselves (the package repository's configuration, their own
markers). Each is written whole beside itself, flushed to disk, then renamed over the old one:
a kill or a power loss at any moment leaves the old text or the new, never half of
`/etc/apt/sources.list` (whose other lines are the host's own) nor a marker cut short (read as
absent, it would let a step that already ran run again).
"""

from __future__ import annotations

import os
from pathlib import Path

# The temporary's suffix: apt skips a name ending in `~` silently (Dir::Ignore-Files-Silently)
# and dnf reads only `.repo` files, so one left by a kill is never read as configuration.
TEMPORARY_SUFFIX = ".kubeupgrade~"


def replace_file(path: Path, data: bytes, mode: int = 0o644, *, keep_mode: bool = True) -> None:
    """`path` holds `data`, atomically. An existing file keeps its mode and owner (with
    `keep_mode` false, it gets `mode` all the same: a file that must stay private); a new one
    gets `mode`. A symbolic link (configuration management may keep the file elsewhere) is
    written through in place, as before: renaming over it would replace the link itself."""
    if path.is_symlink():
        path.write_bytes(data)
        return
    owner = None
    if keep_mode:
        try:
            stat = path.stat()
            mode, owner = stat.st_mode & 0o7777, (stat.st_uid, stat.st_gid)
        except FileNotFoundError:
            pass
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    # O_BINARY: Windows would otherwise write each "\n" as "\r\n"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        if hasattr(os, "fchmod"):  # POSIX (Windows has it from Python 3.13 only)
            os.fchmod(descriptor, mode)  # the umask narrowed the mode os.open was given
        if owner is not None and hasattr(os, "fchown"):
            try:
                os.fchown(descriptor, *owner)
            except PermissionError:  # not root (the sandbox, tests): the file is ours anyway
                pass
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """The rename itself on disk (POSIX; Windows has no directory handles to flush)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
