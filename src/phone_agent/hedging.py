"""Hedged attempts: the first of several providers to answer wins, within a deadline.

The LLM chain (brain/llm.py) and the STT ladder (voice/stt_ladder.py) both climb a ladder of
providers this way: the first attempt starts at once; the next starts as soon as every running one
has failed, or beside a running one that has been silent for ``hedge_secs``; the first success wins
and the others are cancelled; nothing by ``deadline_secs`` means the ladder has run out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def first_to_succeed(
    attempts: Sequence[Callable[[], Awaitable[T]]],
    *,
    hedge_secs: float,
    deadline_secs: float,
    on_failure: Callable[[int, BaseException], None],
    release: Callable[[T], Awaitable[None]] | None = None,
) -> tuple[int, T] | None:
    """Run ``attempts`` in order, hedged; ``(index, result)`` of the first success, or None.

    Args:
        attempts: each starts one try (called at most once, in order).
        hedge_secs: a running attempt silent this long gets the next one started beside it.
        deadline_secs: no success by then: every attempt still running is cancelled and reported
            to ``on_failure`` with a ``TimeoutError``.
        on_failure: told of each attempt that failed (its index and exception).
        release: given any result that arrived after the winner (e.g. to close a stream).
    """
    start = time.monotonic()
    deadline = start + deadline_secs
    waiting = list(range(len(attempts)))
    running: dict[asyncio.Future[T], int] = {}
    next_start = start
    try:
        while True:
            now = time.monotonic()
            if waiting and (now >= next_start or not running):
                index = waiting.pop(0)
                running[asyncio.ensure_future(attempts[index]())] = index
                next_start = now + hedge_secs
            if not running:
                return None
            wake = deadline if not waiting else min(deadline, next_start)
            done, _ = await asyncio.wait(
                running, timeout=max(0.0, wake - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                index = running.pop(task)
                error = task.exception()
                if error is None:
                    return index, task.result()
                on_failure(index, error)
            if time.monotonic() >= deadline:
                for index in sorted(running.values()):
                    on_failure(index, TimeoutError("no answer in time"))
                return None
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
            for task in running:  # an attempt that succeeded while the others were being cancelled
                if release is not None and not task.cancelled() and task.exception() is None:
                    await release(task.result())
