"""Idempotent writes on the memory service: each ``Idempotency-Key`` is applied once.

The HTTP client's outbox replays a write until the service confirms it, so the service can see one
write several times: its answer was lost, or two processes replay one outbox file. ``apply_once``
records the key before applying the write and the answer after it; a replay gets the recorded
answer and changes nothing (a replayed delete no longer erases what a newer call stored). A key
whose write is still running answers 409 (the client retries later); a claim left by a process
that died mid-write is taken over after ``STALE_CLAIM``. Keys are forgotten after ``KEEP_DAYS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.errors import PhoneAgentError
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import MemoryRequest, utcnow

STALE_CLAIM = timedelta(seconds=120)
KEEP_DAYS = 30


class RequestInProgress(PhoneAgentError):
    """The same request is being applied right now (a concurrent replay): retry later."""

    status_code = 409


async def _claim(sessions: async_sessionmaker[AsyncSession], request_id: str) -> dict[str, Any] | None:
    """Claim ``request_id``; its recorded answer when it was applied already, else None (apply it)."""
    try:
        async with transaction(sessions) as session:
            session.add(MemoryRequest(request_id=request_id, response=None, created_at=utcnow()))
        return None
    except IntegrityError:
        pass  # seen before
    async with transaction(sessions) as session:
        row = await session.get(MemoryRequest, request_id)
        if row is None:  # forgotten between the two statements: apply it
            session.add(MemoryRequest(request_id=request_id, response=None, created_at=utcnow()))
            return None
        if row.response is not None:
            return dict(row.response)
        taken = await session.execute(  # a claim whose process died: take it over
            update(MemoryRequest)
            .where(MemoryRequest.request_id == request_id, MemoryRequest.created_at < utcnow() - STALE_CLAIM)
            .values(created_at=utcnow())
        )
        if getattr(taken, "rowcount", 0):
            return None
    raise RequestInProgress(f"request {request_id} is being applied; retry later")


async def apply_once(
    sessions: async_sessionmaker[AsyncSession],
    request_id: str | None,
    write: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run ``write`` unless ``request_id`` was applied already; returns its (recorded) answer."""
    if not request_id:
        return await write()
    recorded = await _claim(sessions, request_id)
    if recorded is not None:
        return recorded
    try:
        answer = await write()
    except BaseException:
        async with transaction(sessions) as session:  # not applied: a retry may apply it
            await session.execute(delete(MemoryRequest).where(MemoryRequest.request_id == request_id))
        raise
    async with transaction(sessions) as session:
        await session.execute(
            update(MemoryRequest).where(MemoryRequest.request_id == request_id).values(response=answer)
        )
    return answer


async def forget_old_requests(sessions: async_sessionmaker[AsyncSession], *, days: int = KEEP_DAYS) -> int:
    """Drop keys older than ``days`` (no outbox holds a write that long); returns how many."""
    async with transaction(sessions) as session:
        result = await session.execute(
            delete(MemoryRequest).where(MemoryRequest.created_at < utcnow() - timedelta(days=days))
        )
        return int(getattr(result, "rowcount", 0) or 0)
