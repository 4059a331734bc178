"""What a call needs before its first word, fetched while Twilio is still connecting the stream.

``POST /phone/incoming`` answers Twilio at once and calls ``CallerPrefetch.start``; by the time the
Media Stream opens (a few hundred ms later on a real call) the caller's memory (profile + top
memories) is known, so the call finds it ready instead of querying on the greeting's critical path.
One ``CallerPrefetch`` per process (held by the ``Runtime``; an orchestrator in another process
simply means no prefetch: the stream fetches for itself). Entries expire after ``PREFETCH_TTL``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loguru import logger

from phone_agent.memory.base import CallerContext, MemoryStore
from phone_agent.memory.calls import fetch_caller_context
from phone_agent.tasks import TaskOwner

PREFETCH_TTL = 60.0  # seconds a prefetch waits for its stream


@dataclass
class _Pending:
    caller: str | None
    task: asyncio.Task[CallerContext | None]
    expires_at: float


async def _fetch(store: MemoryStore, phone: str | None) -> CallerContext | None:
    """The caller's memory (profile + top memories); None when the number is withheld."""
    return await fetch_caller_context(store, phone) if phone else None


class CallerPrefetch:
    """Callers' contexts being fetched for streams about to open, by call SID (tasks owned by ``tasks``)."""

    def __init__(self, tasks: TaskOwner) -> None:
        self._tasks = tasks
        self._pending: dict[str, _Pending] = {}

    def start(self, store: MemoryStore, *, call_sid: str, caller: str | None) -> None:
        """Start fetching the caller's context for the stream of ``call_sid`` (returns at once)."""
        now = time.monotonic()
        for sid in [sid for sid, p in self._pending.items() if p.expires_at < now]:
            self._pending.pop(sid).task.cancel()  # streams that never came
        task = self._tasks.spawn(_fetch(store, caller), name=f"prefetch-{call_sid}")
        if task is not None:  # None: the process is shutting down
            self._pending[call_sid] = _Pending(caller, task, now + PREFETCH_TTL)

    async def take(self, store: MemoryStore, *, call_sid: str, caller: str | None) -> CallerContext | None:
        """The prefetched context of this call when there is one for this caller, else fetched now."""
        entry = self._pending.pop(call_sid, None)
        if entry is not None and entry.caller == caller:
            try:
                return await entry.task
            except Exception as exc:  # a failed prefetch is only a missed shortcut
                logger.warning("caller prefetch failed ({}); fetching again", type(exc).__name__)
        elif entry is not None:
            entry.task.cancel()  # prefetched for another number: the signed stream parameter wins
        return await _fetch(store, caller)

    def __len__(self) -> int:
        return len(self._pending)
