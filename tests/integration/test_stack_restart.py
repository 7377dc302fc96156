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
