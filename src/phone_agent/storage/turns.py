"""``append_turns``: add turns to a call under the next free sequence numbers, never a duplicate.

``(call_id, seq)`` is unique (migration 0007). The next number is read and the turns written in one
transaction; when a concurrent writer (another process) took the same numbers first, the unique
index refuses the insert and the transaction is retried with fresh numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import CallTurn

ATTEMPTS = 5


async def append_turns(
    sessions: async_sessionmaker[AsyncSession],
    call_id: int,
    turns: Sequence[dict[str, Any]],
    *,
    also: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> list[CallTurn]:
    """Insert ``turns`` (CallTurn fields without seq) after the call's last turn; returns them.

    ``also`` runs in the same transaction (e.g. closing the call), so it happens only with the turns.
    """
    for attempt in range(ATTEMPTS):
        try:
            async with transaction(sessions) as session:
                last = await session.scalar(
                    select(func.coalesce(func.max(CallTurn.seq), 0)).where(CallTurn.call_id == call_id)
                )
                rows = [
                    CallTurn(call_id=call_id, seq=int(last or 0) + 1 + i, **t) for i, t in enumerate(turns)
                ]
                session.add_all(rows)
                await session.flush()
                if also is not None:
                    await also(session)
                return rows
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
