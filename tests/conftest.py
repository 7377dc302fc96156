"""Shared fixtures: sandboxes brought up in temporary directories and always taken down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubeupgrade.sandbox.manager import Sandbox


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    created: list[Sandbox] = []

    def make(**options) -> Sandbox:
        directory = tmp_path / f"sandbox-{len(created)}"
        box, _ = Sandbox.up(directory, **options)
        created.append(box)
        return box

    yield make
    for box in created:
        box.down()
