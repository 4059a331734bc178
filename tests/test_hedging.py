"""first_to_succeed: failures move down the ladder at once, silence after the hedge, the deadline ends it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from phone_agent.hedging import first_to_succeed


def attempt(log: list[str], name: str, *, after: float, fail: bool = False) -> Callable[[], Awaitable[str]]:
    async def run() -> str:
        log.append(f"start {name}")
        await asyncio.sleep(after)
        if fail:
            raise ConnectionError(name)
        return name

    return run


async def test_a_failure_starts_the_next_attempt_at_once() -> None:
    log: list[str] = []
    failures: list[tuple[int, str]] = []
    started = time.monotonic()
    won = await first_to_succeed(
        [attempt(log, "a", after=0.0, fail=True), attempt(log, "b", after=0.05)],
        hedge_secs=5,
        deadline_secs=5,
        on_failure=lambda i, exc: failures.append((i, type(exc).__name__)),
    )
    assert won == (1, "b") and failures == [(0, "ConnectionError")]
    assert time.monotonic() - started < 1  # not after the hedge


async def test_a_silent_attempt_is_hedged_and_the_loser_released() -> None:
    log: list[str] = []
    released: list[str] = []

    async def release(result: str) -> None:
        released.append(result)

    won = await first_to_succeed(
        [attempt(log, "slow", after=0.3), attempt(log, "fast", after=0.05)],
        hedge_secs=0.1,
        deadline_secs=2,
        on_failure=lambda i, exc: None,
        release=release,
    )
    assert won == (1, "fast") and log == ["start slow", "start fast"] and released == []


async def test_nothing_by_the_deadline_reports_every_running_attempt() -> None:
    log: list[str] = []
    failures: list[tuple[int, str]] = []
    started = time.monotonic()
    won = await first_to_succeed(
        [attempt(log, "a", after=10), attempt(log, "b", after=10)],
        hedge_secs=0.1,
        deadline_secs=0.3,
        on_failure=lambda i, exc: failures.append((i, type(exc).__name__)),
    )
    assert won is None and failures == [(0, "TimeoutError"), (1, "TimeoutError")]
    assert 0.3 <= time.monotonic() - started < 1.5
