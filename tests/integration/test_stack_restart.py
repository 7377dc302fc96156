"""The harness survives what the fault tests do to it: a redis-server back on the same port."""

import pytest

from kubeupgrade.errors import RuntimeFailure
from kubeupgrade.sandbox.stack import Stack


def test_waiting_for_workers_survives_a_redis_server_restarted_on_the_same_port(make_sandbox):
    stack = Stack(make_sandbox(control_planes=1, workers=0))
    absent = ["controller@nowhere"]  # asked by ping: the cached client app keeps a connection
    try:
        stack.start_redis(appendonly=False)
        with pytest.raises(RuntimeFailure, match="workers not answering: controller@nowhere"):
            stack.wait_for_workers(absent, timeout=1.0)
        stack.stop_redis()
        stack.start_redis(appendonly=False)  # same port, as a restart or the next test gets it
        # A broken pooled connection is not "no answer" for ever, nor a ConnectionError.
        with pytest.raises(RuntimeFailure, match="workers not answering: controller@nowhere"):
            stack.wait_for_workers(absent, timeout=3.0)
    finally:
        stack.stop_all()


def test_a_redis_server_is_started_only_where_it_is_the_one_that_answers(make_sandbox):
    """A restart and a wipe of the broker drawn for one moment (bench.soak) each started a
    redis-server: the second could not bind its port, the first ran on untracked, and every
    later wipe killed nothing. Starting one over a running one, or where another answers on the
    port, is refused naming it."""
    import subprocess

    from kubeupgrade.sandbox.processes import free_port
    from kubeupgrade.sandbox.stack import wait_for_redis

    box = make_sandbox(control_planes=1, workers=0)
    stack = Stack(box)
    port = free_port()
    stranger = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stack.start_redis(appendonly=False)
        tracked = stack.processes["redis"]
        with pytest.raises(RuntimeFailure, match=rf"still runs \(pid {tracked.pid}\)"):
            stack.start_redis(appendonly=False)
        assert stack.processes["redis"] is tracked and tracked.poll() is None
        stack.stop_redis()

        wait_for_redis(port, "the stranger")
        stack.redis_port = port  # as a redis-server left on the stack's port by nobody
        with pytest.raises(RuntimeFailure, match=rf"another redis-server \(pid {stranger.pid}\) answers on port {port}"):
            stack.start_redis(appendonly=False)
    finally:
        stack.stop_all()
        stranger.kill()
        stranger.wait(5)
