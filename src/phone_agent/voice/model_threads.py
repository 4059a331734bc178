"""Results of the shared model threads (Silero batcher, smart-turn pool) back to the waiting calls.

A model thread answers many calls; each waits on a future of its own event loop, which only that
loop may resolve. A future already done is a call that ended while it waited (its task cancelled
the future), and a loop that has closed is a process or test app that has stopped: both are
skipped, so one call ending never disturbs the answers of the others.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")
Answer = tuple[asyncio.Future[T], T | Exception]


def answer(loop: asyncio.AbstractEventLoop, answers: list[Answer[T]]) -> None:
    """Resolve ``answers`` (future, result or exception) on ``loop``; callable from any thread."""
    try:
        loop.call_soon_threadsafe(_resolve, answers)
    except RuntimeError:  # the loop has closed: its calls are over
        pass


def _resolve(answers: list[Answer[T]]) -> None:
    for future, outcome in answers:
        if future.done():
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
