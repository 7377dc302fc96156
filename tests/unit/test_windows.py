"""Maintenance windows: open and closed moments, windows past midnight, time zones with daylight
saving, and the next opening is really the first open moment."""

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeupgrade.model.campaign import Window
from kubeupgrade.planning.windows import describe, is_open, next_opening, parse_time, windows_of

BERLIN_WEEKEND_NIGHTS = Window(frozenset({5, 6}), time(22, 0), time(4, 0), "Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_a_window_past_midnight_belongs_to_the_day_it_opens():
    # 2026-11-28 is a Saturday; Berlin is UTC+1 in November.
    assert not is_open([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 28, 20, 59))
    assert is_open([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 28, 21, 0))  # 22:00 Berlin
    assert is_open([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 30, 2, 59))  # Monday 03:59 from Sunday's
    assert not is_open([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 30, 3, 0))  # Monday 04:00: closed
    assert not is_open([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 27, 22, 0))  # Friday night: not listed
    assert next_opening([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 30, 3, 0)) == utc(2026, 12, 5, 21, 0)


def test_daylight_saving_moves_the_window_in_utc():
    nightly = Window(frozenset(range(7)), time(2, 30), time(3, 30), "Europe/Berlin")
    assert is_open([nightly], utc(2026, 1, 10, 1, 45))  # CET: 02:45
    assert is_open([nightly], utc(2026, 7, 10, 0, 45))  # CEST: 02:45
    assert not is_open([nightly], utc(2026, 7, 10, 1, 45))  # CEST: 03:45


def test_no_window_means_always_open_and_status_says_when_it_opens():
    assert is_open([], utc(2026, 11, 28, 12, 0)) and next_opening([], utc(2026, 11, 28, 12, 0)) is None
    text = describe([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 28, 20, 0))
    assert text == "closed; the next window opens 2026-11-28T21:00:00+00:00 (in 1h00m00s)"
    assert describe([BERLIN_WEEKEND_NIGHTS], utc(2026, 11, 28, 21, 30)) == "open"


@pytest.mark.parametrize("text", ["2:00", "24:00", "12:60", "noon", "12:00:00:00"])
def test_times_are_hh_mm(text):
    with pytest.raises(ValueError):
        parse_time(text)


windows = st.builds(
    Window,
    st.frozensets(st.integers(0, 6), min_size=1),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
).filter(lambda w: w.start != w.end)


@settings(max_examples=200)
@given(st.lists(windows, min_size=1, max_size=3),
       st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)))
def test_the_next_opening_is_the_first_open_moment(chosen, naive):
    now = naive.replace(tzinfo=UTC, second=0, microsecond=0)
    upcoming = next_opening(chosen, now)
    if is_open(chosen, now):
        assert upcoming is None
        return
    assert upcoming is not None and upcoming > now
    assert is_open(chosen, upcoming)
    probe = now
    while probe < upcoming:  # closed all the way there (15-minute grid: every start is on it)
        assert not is_open(chosen, probe), probe
        probe += timedelta(minutes=15)


@pytest.mark.parametrize("zone", ["America", "x" * 300, "Etc/../UTC", "", "Mars/Olympus", "zone.tab"])
def test_a_stored_window_whose_zone_does_not_load_reads_as_damaged(zone):
    # ZoneInfo fails in several ways (a directory, a file name too long, a file that is not a
    # zone); each must come out as the one ValueError the record layer names as damage.
    stored = {"policies": {"windows": [{"days": ["Sat"], "start": "22:00", "end": "04:00",
                                        "timezone": zone}]}}
    with pytest.raises(ValueError, match="policies.windows does not read"):
        windows_of(stored)
