"""Shared fixtures: sandboxes brought up in temporary directories and always taken down."""

from __future__ import annotations

import socket
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


@pytest.fixture
def make_stack(make_sandbox, monkeypatch):
    """A sandbox with its real processes: redis-server, one agent per node (or, with `farm`,
    one process serving them all), the controller.
    The test acts as the sandbox's operator: its campaigns are signed with the operator key and
    the tasks and control messages it sends (abort, ping) with the operator's message key."""
    from kubeupgrade.sandbox.stack import Stack
    from kubeupgrade.security.signing import KEY_ENV

    stacks: list[Stack] = []

    def make(*, flower: bool = False, metrics: bool = False, visibility_timeout: float = 3600.0,
             agent_poll: float = 1.0, secure_broker: bool = False, agent_command: list[str] | None = None,
             farm: bool = False, controller_concurrency: int = 8, **sandbox_options) -> Stack:
        sandbox_options.setdefault("time_scale", 0.005)
        box = make_sandbox(**sandbox_options)
        monkeypatch.setenv(KEY_ENV, str(box.signing_key))
        for name, value in box.message_identity("operator").env().items():
            monkeypatch.setenv(name, value)
        stack = Stack(box, visibility_timeout=visibility_timeout, agent_poll=agent_poll,
                      secure_broker=secure_broker)
        if agent_command is not None:
            stack.agent_command = agent_command
        stacks.append(stack)
        stack.start_redis()
        if farm:  # every node's agent in one process (kubeupgrade.sandbox.agent_farm)
            stack.start_farm(concurrency=4)
        else:
            stack.start_agents()
        stack.start_controller(concurrency=controller_concurrency, metrics=metrics)
        if flower:
            stack.start_flower()
        names = [f"agent@{n['name']}" for n in box.nodes] + [f"controller@{socket.gethostname()}"]
        stack.wait_for_workers(names)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free port (no persistence), killed after the test."""
    from kubeupgrade.sandbox.processes import free_port
    from tests.helpers import start_redis_server

    port = free_port()
    server = start_redis_server(port, tmp_path)
    yield f"redis://127.0.0.1:{port}/0"
    server.kill()
    server.wait(5)
