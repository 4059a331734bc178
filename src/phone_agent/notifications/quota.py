"""Rate limits shared by every worker: at most ``limit`` uses of a key per window, in the database.

A use is claimed with single-statement updates (``sent < limit`` / window over), so two workers or
two concurrent calls cannot both take the last place; the first claim of a key inserts its row.
Keys are event kinds (``message``) or narrower (``provider_failure:openai``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import NotifyQuota, utcnow

HOUR = timedelta(hours=1)
INSERT_ROUNDS = 3  # a lost insert race means the row exists now: the next round updates it


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    *,
    limit: int,
    window: timedelta = HOUR,
    now: datetime | None = None,
) -> bool:
    """Take one use of ``key``; False when ``limit`` uses were already taken in the current window.

    The window starts at the first use and lasts ``window``; ``limit`` 0 means no limit.
    """
    if limit <= 0:
        return True
    for _ in range(INSERT_ROUNDS):
        at = now or utcnow()
        try:
            async with transaction(sessions) as session:
                return await _claim_once(session, key, limit=limit, at=at, cutoff=at - window)
        except IntegrityError:
            continue  # another worker inserted the row first
    return False


async def _claim_once(session: AsyncSession, key: str, *, limit: int, at: datetime, cutoff: datetime) -> bool:
    row = NotifyQuota
    taken = await session.execute(
        update(row)
        .where(row.key == key, row.window_started_at > cutoff, row.sent < limit)
        .values(sent=row.sent + 1)
    )
    if getattr(taken, "rowcount", 0):
        return True
    restarted = await session.execute(
        update(row)
        .where(row.key == key, row.window_started_at <= cutoff)
        .values(sent=1, window_started_at=at)
    )
    if getattr(restarted, "rowcount", 0):
        return True
    if await session.get(row, key) is not None:
        return False  # the window is full
    session.add(NotifyQuota(key=key, sent=1, window_started_at=at))
    await session.flush()
    return True
