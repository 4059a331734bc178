"""The owner's figures over the last days: calls per day, outcomes, average duration, transfers,
busiest hours and answer latency (p50/p95), in the business's time zone.

Phone calls only (``/v1/chat`` conversations are counted apart as ``chats``). Answer latency is
the voice-to-voice time of each agent answer: the caller stopped speaking → the first audio of the
answer was sent (``call_turns.marks``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.storage.tables import Call, CallTurn, utcnow


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def answer_latency_ms(marks: dict[str, Any] | None) -> float | None:
    """Caller stopped → first audio sent, when a turn has both marks in order."""
    stopped = _number((marks or {}).get("caller_stopped"))
    sent = _number((marks or {}).get("first_audio_sent"))
    return sent - stopped if stopped is not None and sent is not None and sent >= stopped else None


@dataclass
class CallStats:
    """The figures of ``call_stats``."""

    days: list[tuple[date, int]]  # oldest first, every day of the window (0 when none)
    calls: int
    chats: int
    outcomes: dict[str, int]  # stored outcome (or "not reviewed") -> calls
    average_duration_s: float | None
    transfers: int
    hours: list[int] = field(default_factory=lambda: [0] * 24)  # calls started per local hour
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    answers_timed: int = 0

    @property
    def busiest_hours(self) -> list[int]:
        """The three local hours with most calls (most first; only hours with calls)."""
        ranked = sorted(range(24), key=lambda h: (-self.hours[h], h))
        return [h for h in ranked[:3] if self.hours[h]]


def is_transfer(call: Call) -> bool:
    """The call was handed to a person (by the agent or by a rescue)."""
    reason = (call.end_reason or "").lower()
    return call.outcome == "transferred" or reason == "transferred" or reason.endswith("→ transfer")


async def call_stats(
    session: AsyncSession, *, days: int, timezone: str, now: datetime | None = None
) -> CallStats:
    """The figures of the last ``days`` local days (today included)."""
    tz = ZoneInfo(timezone)
    today = (now or utcnow()).astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tz)
    rows = list((await session.execute(select(Call).where(Call.started_at >= since))).scalars())
    calls = [c for c in rows if c.direction != "chat"]
    per_day = Counter(c.started_at.astimezone(tz).date() for c in calls)
    hours = [0] * 24
    for c in calls:
        hours[c.started_at.astimezone(tz).hour] += 1
    durations = [(c.ended_at - c.started_at).total_seconds() for c in calls if c.ended_at]
    marks = await session.execute(
        select(CallTurn.marks)
        .join(Call, Call.id == CallTurn.call_id)
        .where(Call.started_at >= since, Call.direction != "chat")
    )
    latencies = [ms for (m,) in marks if (ms := answer_latency_ms(m)) is not None]
    return CallStats(
        days=[(first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0)) for i in range(days)],
        calls=len(calls),
        chats=len(rows) - len(calls),
        outcomes=dict(Counter(c.outcome or "not reviewed" for c in calls).most_common()),
        average_duration_s=round(sum(durations) / len(durations), 1) if durations else None,
        transfers=sum(1 for c in calls if is_transfer(c)),
        hours=hours,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        answers_timed=len(latencies),
    )
