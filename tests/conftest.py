"""Shared fixtures: sandboxes brought up in temporary directories and always taken down."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubeupgrade.sandbox.faults import Fault, FaultKind
from kubeupgrade.sandbox.manager import Sandbox


@pytest.fixture
def make_sandbox(tmp_path: Path, request) -> Iterator[Callable[..., Sandbox]]:
    created: list[Sandbox] = []
    added: list[tuple[Sandbox, Fault]] = []

    def make(**options) -> Sandbox:
        directory = tmp_path / f"sandbox-{len(created)}"
        box, _ = Sandbox.up(directory, **options)
        created.append(box)
        add_fault = box.add_fault

        def recorded(*args, **kwargs) -> Fault:
            fault = add_fault(*args, **kwargs)
            added.append((box, fault))
            return fault

        box.add_fault = recorded
        return box

    yield make
    left = {id(box): box.faults() for box in created}  # each fault file read once
    unmet = [fault for box, fault in added if fault in left[id(box)]
             and fault.kind in (FaultKind.FAIL, FaultKind.HANG, FaultKind.CRASH)]
    for box in created:
        box.down()
    report = getattr(request.node, "report_call", None)
    if unmet and report is not None and report.passed:
        # A fault no command ever met proves nothing: its --command no longer begins any argv
        # the agents run (the argv changed), or the test ended before reaching it.
        pytest.fail("sandbox faults no command met: " + "; ".join(
            f"{f.kind} {f.command!r} on {f.node}" for f in unmet), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item: a fixture's teardown reads whether the test
    failed (make_stack then prints its processes' log tails)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


LOG_TAIL_LINES = {"controller.log": 40}  # and 10 of every other process's log
_LOG_NOISE = ("SecurityWarning", "absolutely not recommended", "Please specify a different user",
              "User information: uid=", "_warn_or_raise_security_error")


def print_log_tails(logs: Path) -> None:
    """The last lines of each process's log (the controller's first), shown by pytest with a
    failed test's report: CI keeps nothing else of a failed run's stack."""
    files = sorted(logs.glob("*.log"), key=lambda path: (path.name != "controller.log", path.name))
    for path in files:
        lines = [line[:300] for line in path.read_text(errors="replace").splitlines()
                 if line.strip() and not line.startswith((" ", "-")) and not any(n in line for n in _LOG_NOISE)]
        lines = lines[-LOG_TAIL_LINES.get(path.name, 10):]
        if lines:
            print(f"--- {path.name}, last {len(lines)} lines ---")
            print("\n".join(lines))


@pytest.fixture
def make_stack(make_sandbox, monkeypatch, request):
    """A sandbox with its real processes: redis-server, one agent per node (or, with `farm`,
    one process serving them all), the controller.
    The test acts as the sandbox's operator: its campaigns are signed with the operator key and
    the tasks and control messages it sends (abort, ping) with the operator's message key."""
    from kubeupgrade.sandbox.stack import Stack
    from kubeupgrade.security.signing import KEY_ENV

    stacks: list[Stack] = []

    def make(*, flower: bool = False, metrics: bool = False, visibility_timeout: float = 3600.0,
             agent_poll: float = 1.0, secure_broker: bool = False, agent_command: list[str] | None = None,
             farm: bool = False, controller_concurrency: int = 8, controller_pool_nice: int | None = None,
             **sandbox_options) -> Stack:
        sandbox_options.setdefault("time_scale", 0.005)
        box = make_sandbox(**sandbox_options)
        monkeypatch.setenv(KEY_ENV, str(box.signing_key))
        for name, value in box.message_identity("operator").env().items():
            monkeypatch.setenv(name, value)
        stack = Stack(box, visibility_timeout=visibility_timeout, agent_poll=agent_poll,
                      secure_broker=secure_broker, controller_loglevel="INFO")
        if agent_command is not None:
            stack.agent_command = agent_command
        stacks.append(stack)
        stack.start_redis()
        if farm:  # every node's agent in one process (kubeupgrade.sandbox.agent_farm)
            stack.start_farm(concurrency=4)
        else:
            stack.start_agents()
        stack.start_controller(concurrency=controller_concurrency, metrics=metrics, pool_nice=controller_pool_nice)
        if flower:
            stack.start_flower()
        names = [f"agent@{n['name']}" for n in box.nodes] + [f"controller@{socket.gethostname()}"]
        stack.wait_for_workers(names)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for stack in stacks:
            print_log_tails(stack.logs)


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
