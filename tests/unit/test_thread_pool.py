"""The Windows agent's thread pool: every end of a task reaches one of the worker's callbacks."""

import pytest

from kubeupgrade.workflow.thread_pool import apply_reporting_failure


def test_what_the_trace_raises_goes_to_the_error_callback_and_not_to_the_success_callback():
    succeeded, failed = [], []

    def trace():
        raise ConnectionError("refused")

    apply_reporting_failure(trace, (), {}, succeeded.append, None, failed.append)
    assert succeeded == []
    assert [type(info.exception.exc) for info in failed] == [ConnectionError]  # as Celery wraps it


def test_a_trace_that_returns_goes_to_the_success_callback_only():
    succeeded, failed, accepted = [], [], []
    apply_reporting_failure(lambda x: (0, x, 0.1), (7,), {}, succeeded.append,
                            lambda pid, when: accepted.append(pid), failed.append)
    assert succeeded == [(0, 7, 0.1)] and failed == [] and len(accepted) == 1


def test_what_a_callback_raises_is_not_reported_as_the_task_failing():
    failed = []

    def broken_callback(_):
        raise RuntimeError("ack refused")

    with pytest.raises(RuntimeError, match="ack refused"):
        apply_reporting_failure(lambda: (0, None, 0.0), (), {}, broken_callback, None, failed.append)
    assert failed == []
