"""The owner's pages on a busy year (issue 15): how long the analytics figures, the inbox, the header's
unread count and the CSV exports take with N calls (each with two timed turns), N/5 messages and
N/10 bookings in the embedded SQLite database. Prints the figures (median of 5 runs).

```bash
.venv/bin/python -m bench.owner_pages            # 5,000 calls
.venv/bin/python -m bench.owner_pages --calls 20000
```
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from phone_agent.admin.exports import EXPORTS
from phone_agent.storage.analytics import call_stats
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.inbox import inbox_items, unread_count
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Appointment, Call, CallTurn, Message

OUTCOMES = ("answered", "message_taken", "appointment_booked", "transferred", "abandoned", "spam")


async def seed(sessions: Any, calls: int) -> None:
    now = datetime.now(UTC)
    async with transaction(sessions) as s:
        for i in range(calls):
            started = now - timedelta(minutes=97 * i % (365 * 24 * 60))
            call = Call(
                call_sid=f"CA{i:08d}", from_number=f"+1555{i % 100000:07d}", status="completed",
                started_at=started, ended_at=started + timedelta(seconds=30 + i % 200),
                outcome=OUTCOMES[i % len(OUTCOMES)], summary=f"Caller {i} asked about policy {i % 37}.",
            )  # fmt: skip
            call.turns = [
                CallTurn(
                    seq=seq,
                    role="agent",
                    text="Hi",
                    marks={"caller_stopped": at, "first_audio_sent": at + 500 + i % 900},
                )
                for seq, at in enumerate((1000, 5000))
            ]
            s.add(call)
            if i % 5 == 0:
                s.add(
                    Message(
                        kind="message",
                        phone=call.from_number,
                        body=f"Please call back ({i})",
                        created_at=started,
                    )
                )
            if i % 10 == 0:
                s.add(
                    Appointment(
                        phone=call.from_number, reason="review", starts_at=started + timedelta(days=3)
                    )
                )


async def median_ms(job: Callable[[], Awaitable[object]], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await job()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(engine)
        sessions = session_factory(engine)
        started = time.perf_counter()
        await seed(sessions, calls)
        took = time.perf_counter() - started
        print(f"seeded {calls} calls, {calls // 5} messages, {calls // 10} bookings in {took:.1f} s")

        async def read(fn: Callable[[Any], Awaitable[object]]) -> object:
            async with sessions() as session:
                return await fn(session)

        from zoneinfo import ZoneInfo

        tz = ZoneInfo("America/New_York")
        jobs = {
            "analytics, 30 days": lambda: read(lambda s: call_stats(s, days=30, timezone="America/New_York")),
            "analytics, 90 days": lambda: read(lambda s: call_stats(s, days=90, timezone="America/New_York")),
            "inbox (open, 100 items)": lambda: read(lambda s: inbox_items(s, state="open")),
            "unread count (header)": lambda: read(unread_count),
            **{f"CSV {name}": (lambda fn=fn: read(lambda s: fn(s, tz))) for name, (_, fn) in EXPORTS.items()},
        }
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} (2 cores shared)")
        for name, job in jobs.items():
            print(f"{name:28s} {await median_ms(job):8.1f} ms")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    asyncio.run(main(parser.parse_args().calls))
