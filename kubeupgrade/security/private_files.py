"""Secrets on disk (private keys, broker passwords): created new, mode 0600 from the start."""

from __future__ import annotations

import os
from pathlib import Path


def write_new_private(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only, never exposed with wider rights; fails with
    FileExistsError rather than overwrite (callers check first and name the file)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
