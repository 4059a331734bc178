"""What a call needs before its first word, fetched while Twilio is still connecting the stream.

``POST /phone/incoming`` answers Twilio at once and starts ``prefetch_call``; by the time the
Media Stream opens (a few hundred ms later on a real call) the caller's record is known, so
``build_call`` finds it ready instead of querying the database on the greeting's critical path.
Prefetches live in this process only (an orchestrator in another process simply means no
prefetch: the stream falls back to fetching for itself) and expire after ``PREFETCH_TTL``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loguru import logger

from phone_agent.runtime import Runtime
from phone_agent.voice.call_records import caller_name

PREFETCH_TTL = 60.0  # seconds a prefetch waits for its stream
EXTRA_KEY = "call_prefetch"


@dataclass
class CallerContext:
    """What is known about the caller when the call starts."""

    phone: str | None
    name: str | None


@dataclass
class _Pending:
    task: asyncio.Task[CallerContext]
    expires_at: float


def _pending(runtime: Runtime) -> dict[str, _Pending]:
    return runtime.extras.setdefault(EXTRA_KEY, {})  # type: ignore[no-any-return]


async def fetch_caller_context(runtime: Runtime, phone: str | None) -> CallerContext:
    """The caller's context, from the database."""
    return CallerContext(phone=phone, name=await caller_name(runtime.sessions, phone))


def prefetch_call(runtime: Runtime, *, call_sid: str, caller: str | None) -> None:
    """Start fetching the caller's context for the stream of ``call_sid`` (returns at once)."""
    pending = _pending(runtime)
    now = time.monotonic()
    for sid in [sid for sid, p in pending.items() if p.expires_at < now]:
        pending.pop(sid).task.cancel()  # streams that never came
    task = asyncio.create_task(fetch_caller_context(runtime, caller), name=f"prefetch-{call_sid}")
    pending[call_sid] = _Pending(task, now + PREFETCH_TTL)


async def caller_context(runtime: Runtime, *, call_sid: str, caller: str | None) -> CallerContext:
    """The prefetched context of this call when there is one for this caller, else fetched now."""
    entry = _pending(runtime).pop(call_sid, None)
    if entry is not None:
        try:
            context = await entry.task
            if context.phone == caller:
                return context
        except Exception as exc:  # a failed prefetch is only a missed shortcut
            logger.warning("caller prefetch failed ({}); fetching again", type(exc).__name__)
    return await fetch_caller_context(runtime, caller)
