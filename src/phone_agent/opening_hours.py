"""Opening hours: parse the ``business_hours`` setting and tell whether a moment is inside them.

Format: segments separated by ``;``, each a day list and one or more time ranges, e.g.
``Mon-Fri 09:00-12:00,13:00-17:00; Sat 10:00-12:00``. Days are ``Mon Tue Wed Thu Fri Sat Sun``
(ranges ``Mon-Fri`` and lists ``Mon,Wed`` allowed); a day not listed is closed. Times are local to
the ``timezone`` setting. ``config`` validates the setting with ``parse_hours`` at load; the brain
books appointments inside the hours (``brain/hours.py``); routing rules read them (``brain/routing``).

``closed_days`` lists dates the business is closed whatever the hours say (holidays): ``2026-12-25,
2027-01-01`` (``parse_closed_days``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from phone_agent.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEGMENT = re.compile(r"^(?P<days>[A-Za-z][A-Za-z,\-\s]*?)\s+(?P<times>\d.*)$")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class OpeningHours:
    """Open intervals per weekday (0 = Monday) as (start, end) local times."""

    intervals: dict[int, tuple[tuple[time, time], ...]]

    def open_ranges(self, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local date, as aware datetimes."""
        return [
            (datetime.combine(day, start, tz), datetime.combine(day, end, tz))
            for start, end in self.intervals.get(day.weekday(), ())
        ]

    def is_open(self, start: datetime, minutes: int, tz: ZoneInfo) -> bool:
        """True when the whole slot lies inside one open interval."""
        local = start.astimezone(tz)
        end = local + timedelta(minutes=minutes)
        return any(lo <= local and end <= hi for lo, hi in self.open_ranges(local.date(), tz))


def parse_hours(text: str) -> OpeningHours:
    """Parse ``business_hours``; a ConfigError names the bad part and shows the format."""
    intervals: dict[int, list[tuple[time, time]]] = {}
    for segment in filter(None, (s.strip() for s in text.split(";"))):
        match = _SEGMENT.match(segment)
        if not match:
            raise _bad(segment)
        days = _days(match["days"], segment)
        for part in match["times"].split(","):
            found = _RANGE.match(part.strip())
            if not found:
                raise _bad(segment)
            h1, m1, h2, m2 = (int(g) for g in found.groups())
            if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2, m2) <= (h1, m1):
                raise _bad(segment)
            end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
            for day in days:
                intervals.setdefault(day, []).append((time(h1, m1), end))
    return OpeningHours({day: tuple(sorted(spans)) for day, spans in intervals.items()})


def parse_closed_days(text: str) -> set[date]:
    """Parse ``closed_days`` (ISO dates separated by commas, semicolons or spaces)."""
    days: set[date] = set()
    for item in filter(None, re.split(r"[,;\s]+", text.strip())):
        try:
            days.add(date.fromisoformat(item))
        except ValueError:
            raise ConfigError(
                f"closed_days: cannot read {item!r}. Expected dates like '2026-12-25, 2027-01-01'."
            ) from None
    return days


def _days(spec: str, segment: str) -> list[int]:
    days: list[int] = []
    for item in filter(None, (s.strip().lower() for s in spec.split(","))):
        if "-" in item:
            first, _, last = (p.strip()[:3] for p in item.partition("-"))
            if first not in DAYS or last not in DAYS:
                raise _bad(segment)
            a, b = DAYS.index(first), DAYS.index(last)
            days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif item[:3] in DAYS:
            days.append(DAYS.index(item[:3]))
        else:
            raise _bad(segment)
    return days


def _bad(segment: str) -> ConfigError:
    return ConfigError(
        f"business_hours: cannot read {segment!r}. Expected e.g. 'Mon-Fri 09:00-17:00; Sat 10:00-12:00'."
    )
