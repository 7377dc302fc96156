"""The harness survives what the fault tests do to it: a redis-server back on the same port."""

from kubeupgrade.sandbox.stack import Stack


def test_waiting_for_workers_survives_a_redis_server_restarted_on_the_same_port(make_sandbox):
    stack = Stack(make_sandbox(control_planes=1, workers=0))
    try:
        stack.start_redis(appendonly=False)
        stack.wait_for_workers([])  # the cached client app now holds a pooled connection
        stack.stop_redis()
        stack.start_redis(appendonly=False)  # same port, as a restart or the next test gets it
        stack.wait_for_workers([], timeout=5.0)
    finally:
        stack.stop_all()
