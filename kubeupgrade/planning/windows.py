"""Maintenance windows: when a node may begin its outage (and a control plane its upgrade). Pure.

A window is days of the week, a start and an end time of day, in an IANA time zone. An end
before the start crosses midnight: the window opened on a listed day runs into the next one.
Times are "HH:MM" (seconds, "HH:MM:SS", are accepted too). No windows: always open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from kubeupgrade.model.campaign import DAYS, Window

__all__ = ["DAYS", "Window", "WindowFit", "describe", "fit", "is_open", "next_opening", "parse_time",
           "windows_of"]


def _spans(window: Window, around: datetime) -> list[tuple[datetime, datetime]]:
    """The openings that start from the day before `around` (local) to a week after."""
    zone = ZoneInfo(window.timezone)
    local = around.astimezone(zone)
    spans = []
    for offset in range(-1, 8):
        day = (local + timedelta(days=offset)).date()
        if day.weekday() not in window.days:
            continue
        opens = datetime.combine(day, window.start, zone)
        closes = datetime.combine(day, window.end, zone)
        if closes <= opens:
            closes += timedelta(days=1)
        spans.append((opens, closes))
    return spans


def _open_span(windows: Sequence[Window], now: datetime) -> tuple[datetime, datetime] | None:
    """The opening `now` falls in, if any."""
    return next(((opens, closes) for window in windows for opens, closes in _spans(window, now)
                 if opens <= now < closes), None)


def is_open(windows: Sequence[Window], now: datetime) -> bool:
    return not windows or _open_span(windows, now) is not None


def next_opening(windows: Sequence[Window], now: datetime) -> datetime | None:
    """When the next window opens (None: open now, or no window ever opens)."""
    if is_open(windows, now):
        return None
    later = [opens for window in windows for opens, _ in _spans(window, now) if opens > now]
    return min(later).astimezone(timezone.utc) if later else None


def parse_time(text: str) -> time:
    """ "HH:MM" or "HH:MM:SS"; ValueError otherwise."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(f"expected a time like 02:00, got {text!r}")
    hour, minute, second = (int(p) for p in [*parts, "00"][:3])
    try:
        return time(hour, minute, second)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a time of day ({error})") from None


def windows_of(campaign: dict[str, Any]) -> tuple[Window, ...]:
    """The windows of a campaign document as stored (campaign_to_dict). ValueError for a stored
    value that does not read (validated at submit: only a damaged record gets here)."""
    try:
        windows = tuple(Window(frozenset(DAYS.index(d) for d in raw["days"]), parse_time(raw["start"]),
                               parse_time(raw["end"]), raw["timezone"])
                        for raw in campaign.get("policies", {}).get("windows", []))
        for window in windows:
            ZoneInfo(window.timezone)
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
        raise ValueError(f"policies.windows does not read: {error!r}") from None
    return windows


def describe(windows: Sequence[Window], now: datetime) -> str:
    """For status: open now, or when the next window opens and how long until then."""
    if is_open(windows, now):
        return "open"
    upcoming = next_opening(windows, now)
    if upcoming is None:
        return "closed; no window opens in the coming week"
    wait = int((upcoming - now).total_seconds())
    hours, rest = divmod(wait, 3600)
    return (f"closed; the next window opens {upcoming.isoformat(timespec='seconds')} "
            f"(in {hours}h{rest // 60:02d}m{rest % 60:02d}s)")


@dataclass(frozen=True)
class WindowFit:
    """How an estimated run lands in the maintenance windows, started at `started`."""
    started: datetime
    finished: datetime
    openings: int  # window openings in which some step began
    busy_seconds: float  # windowed steps' time
    open_seconds: float  # the length of those openings
    stalled: bool = False  # some step could not start: no window opens in the coming week

    @property
    def occupancy(self) -> float:
        return self.busy_seconds / self.open_seconds if self.open_seconds else 0.0


def fit(windows: Sequence[Window], started: datetime, steps: Sequence[tuple[float, bool]]) -> WindowFit:
    """Walk `steps` (seconds, windowed) from `started` as the engine runs them: a windowed step
    begins only while a window is open, and once begun runs to its end even past the close."""
    now, busy = started, 0.0
    used: dict[datetime, float] = {}  # opening -> its length
    for seconds, windowed in steps:
        if windowed and windows:
            span = _open_span(windows, now)
            if span is None:
                opening = next_opening(windows, now)
                if opening is None:
                    return WindowFit(started, now, len(used), busy, sum(used.values()), stalled=True)
                now = opening
                span = _open_span(windows, now)
            if span is not None:
                used[span[0]] = (span[1] - span[0]).total_seconds()
            busy += seconds
        now += timedelta(seconds=seconds)
    return WindowFit(started, now, len(used), busy, sum(used.values()))
