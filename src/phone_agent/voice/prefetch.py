"""What a call needs before its first word, fetched while Twilio is still connecting the stream.

``POST /phone/incoming`` answers Twilio at once and starts ``prefetch_call``; by the time the
Media Stream opens (a few hundred ms later on a real call) the caller's memory (profile + top
memories) is known, so ``build_call`` finds it ready instead of querying the database on the
greeting's critical path.
Prefetches live in this process only (an orchestrator in another process simply means no
prefetch: the stream falls back to fetching for itself) and expire after ``PREFETCH_TTL``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loguru import logger

from phone_agent.memory.base import CallerContext
from phone_agent.memory.calls import fetch_caller_context
from phone_agent.runtime import Runtime

PREFETCH_TTL = 60.0  # seconds a prefetch waits for its stream
EXTRA_KEY = "call_prefetch"


@dataclass
class _Pending:
    caller: str | None
    task: asyncio.Task[CallerContext | None]
    expires_at: float


def _pending(runtime: Runtime) -> dict[str, _Pending]:
    return runtime.extras.setdefault(EXTRA_KEY, {})  # type: ignore[no-any-return]


async def _fetch(runtime: Runtime, phone: str | None) -> CallerContext | None:
    """The caller's memory (profile + top memories); None when the number is withheld."""
    return await fetch_caller_context(runtime, phone) if phone else None


def prefetch_call(runtime: Runtime, *, call_sid: str, caller: str | None) -> None:
    """Start fetching the caller's context for the stream of ``call_sid`` (returns at once)."""
    pending = _pending(runtime)
    now = time.monotonic()
    for sid in [sid for sid, p in pending.items() if p.expires_at < now]:
        pending.pop(sid).task.cancel()  # streams that never came
    task = asyncio.create_task(_fetch(runtime, caller), name=f"prefetch-{call_sid}")
    pending[call_sid] = _Pending(caller, task, now + PREFETCH_TTL)


async def take_caller_context(
    runtime: Runtime, *, call_sid: str, caller: str | None
) -> CallerContext | None:
    """The prefetched context of this call when there is one for this caller, else fetched now."""
    entry = _pending(runtime).pop(call_sid, None)
    if entry is not None and entry.caller == caller:
        try:
            return await entry.task
        except Exception as exc:  # a failed prefetch is only a missed shortcut
            logger.warning("caller prefetch failed ({}); fetching again", type(exc).__name__)
    elif entry is not None:
        entry.task.cancel()  # prefetched for another number: the signed stream parameter wins
    return await _fetch(runtime, caller)
