"""How long a worker that met an unrecoverable error waits before it starts itself again."""

from kubeupgrade.workflow.runners import RESTART_PAUSE_MAX, SETTLED_AFTER, restart_pause


def test_restarts_in_a_row_pause_longer_each_time_up_to_the_cap():
    pauses = [restart_pause(n, uptime=1.5) for n in range(8)]
    assert pauses[0] == 1.0
    assert all(later >= earlier for earlier, later in zip(pauses, pauses[1:]))
    assert pauses[-1] == RESTART_PAUSE_MAX and max(pauses) == RESTART_PAUSE_MAX
    assert sum(pauses) >= 40  # eight refusals in a row: tens of seconds, not eight restarts in 12 s


def test_a_worker_that_ran_a_while_restarts_at_once_again():
    assert restart_pause(20, uptime=SETTLED_AFTER) == 1.0
    assert restart_pause(20, uptime=SETTLED_AFTER - 1) == RESTART_PAUSE_MAX


def test_a_count_from_a_damaged_environment_does_not_stop_a_restart():
    assert restart_pause(-3, uptime=0.0) == 1.0
