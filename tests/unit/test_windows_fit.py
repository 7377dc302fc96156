"""How an estimated run lands in maintenance windows (planning.windows.fit). Pure."""

from datetime import UTC, datetime, time, timedelta

from kubeupgrade.model.campaign import Window
from kubeupgrade.planning.windows import fit

SATURDAY_NIGHT = (Window(frozenset({5}), time(2, 0), time(6, 0), "UTC"),)
FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
HOUR = 3600.0


def test_without_windows_the_steps_run_back_to_back():
    result = fit((), FRIDAY_NOON, [(600, False), (HOUR, True), (300, False)])
    assert result.finished == FRIDAY_NOON + timedelta(seconds=4500)
    assert (result.openings, result.occupancy) == (0, 0.0)


def test_a_windowed_step_waits_for_the_opening_and_once_begun_runs_past_the_close():
    result = fit(SATURDAY_NIGHT, FRIDAY_NOON, [(600, False), (HOUR, True), (HOUR, True), (3 * HOUR, True), (300, False)])
    assert result.finished == datetime(2026, 11, 28, 7, 5, tzinfo=UTC)  # began 04:00, ran to 07:00
    assert result.openings == 1 and result.busy_seconds == 5 * HOUR
    assert result.occupancy == 5 / 4  # the window is overrun: the report says so


def test_steps_left_when_the_window_closes_wait_a_week():
    result = fit(SATURDAY_NIGHT, datetime(2026, 11, 28, 2, 0, tzinfo=UTC), [(1.5 * HOUR, True)] * 4)
    assert result.openings == 2
    assert result.finished == datetime(2026, 12, 5, 3, 30, tzinfo=UTC)
    assert result.occupancy == 6 / 8


def test_a_window_that_never_opens_stalls_the_run_and_says_so():
    never = (Window(frozenset(), time(2, 0), time(6, 0), "UTC"),)
    result = fit(never, FRIDAY_NOON, [(600, False), (HOUR, True)])
    assert result.stalled and result.finished == FRIDAY_NOON + timedelta(seconds=600)
