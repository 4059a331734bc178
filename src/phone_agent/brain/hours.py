"""Appointment slots inside the business's opening hours (``opening_hours.py`` parses them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from phone_agent.opening_hours import OpeningHours

SLOT_MINUTES = 30
SEARCH_DAYS = 14


def overlaps(start: datetime, minutes: int, taken: Iterable[tuple[datetime, int]]) -> bool:
    """True when [start, start+minutes) overlaps any taken (start, minutes) slot."""
    end = start + timedelta(minutes=minutes)
    return any(t < end and start < t + timedelta(minutes=m) for t, m in taken)


def nearest_free_slots(
    hours: OpeningHours,
    tz: ZoneInfo,
    wanted: datetime,
    minutes: int,
    taken: Sequence[tuple[datetime, int]],
    *,
    now: datetime,
    count: int = 3,
) -> list[datetime]:
    """The ``count`` open, free slots nearest to ``wanted`` (after ``now``), in time order."""
    first_day = max(wanted.astimezone(tz).date() - timedelta(days=SEARCH_DAYS), now.astimezone(tz).date())
    candidates: list[datetime] = []
    for offset in range((wanted.astimezone(tz).date() - first_day).days + SEARCH_DAYS + 1):
        for lo, hi in hours.open_ranges(first_day + timedelta(days=offset), tz):
            slot = lo
            while slot + timedelta(minutes=minutes) <= hi:
                if slot > now and not overlaps(slot, minutes, taken):
                    candidates.append(slot)
                slot += timedelta(minutes=SLOT_MINUTES)
    candidates.sort(key=lambda s: (abs((s - wanted).total_seconds()), s))
    return sorted(candidates[:count])


def spoken_time(moment: datetime, tz: ZoneInfo) -> str:
    """A time as a receptionist says it: 'Tuesday 1 December at 10:30'."""
    local = moment.astimezone(tz)
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M}"
