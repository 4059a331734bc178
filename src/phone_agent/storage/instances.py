"""Running processes (``instances``) and the calls they hold: heartbeats and crash recovery.

Each process registers itself at start and beats every few seconds. A media stream claims its call
for the process (``calls.instance_id``); the call's end releases it. A call still held by an
instance that stopped beating (killed, crashed, the machine gone) or that stopped without
releasing it is a ghost: ``close_orphaned_calls`` closes it as ``agent_crashed`` and hands it back
so its stored turns can be learned from. The close is one conditional update per call, so when
several survivors look at once each ghost is closed (and learned from) exactly once.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.calls import FINAL_STATUSES
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Call, Instance, utcnow

CRASHED = "agent_crashed"
FORGET_AFTER = timedelta(days=7)  # rows of long-dead instances are deleted


async def register_instance(
    sessions: async_sessionmaker[AsyncSession], *, instance_id: str, role: str
) -> None:
    """Record this process as alive."""
    now = utcnow()
    async with transaction(sessions) as session:
        session.add(
            Instance(
                id=instance_id,
                role=role,
                host=socket.gethostname()[:200],
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
            )
        )


async def beat(sessions: async_sessionmaker[AsyncSession], instance_id: str) -> None:
    """Say this process is still alive."""
    async with transaction(sessions) as session:
        await session.execute(
            update(Instance).where(Instance.id == instance_id).values(heartbeat_at=utcnow())
        )


async def stop_instance(sessions: async_sessionmaker[AsyncSession], instance_id: str) -> None:
    """Mark this process stopped (calls it still holds are ghosts from now on)."""
    async with transaction(sessions) as session:
        await session.execute(update(Instance).where(Instance.id == instance_id).values(stopped_at=utcnow()))


async def close_orphaned_calls(
    sessions: async_sessionmaker[AsyncSession], *, dead_after: timedelta, now: datetime | None = None
) -> list[str]:
    """Close the calls held by dead instances as ``agent_crashed``; returns their CallSids."""
    now = now or utcnow()
    alive = select(Instance.id).where(
        Instance.heartbeat_at >= now - dead_after, Instance.stopped_at.is_(None)
    )
    async with sessions() as session:
        held = (
            await session.execute(
                select(Call.call_sid, Call.instance_id).where(
                    Call.instance_id.is_not(None), Call.instance_id.not_in(alive)
                )
            )
        ).all()
    closed = []
    for call_sid, instance_id in held:
        async with transaction(sessions) as session:
            result = await session.execute(
                update(Call)
                .where(
                    Call.call_sid == call_sid, Call.instance_id == instance_id
                )  # nobody closed it meanwhile
                .values(
                    instance_id=None,
                    status=case((Call.status.in_(FINAL_STATUSES), Call.status), else_="completed"),
                    ended_at=func.coalesce(Call.ended_at, literal(now, Call.ended_at.type)),
                    end_reason=CRASHED,
                )
            )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            closed.append(call_sid)
    async with transaction(sessions) as session:
        await session.execute(delete(Instance).where(Instance.heartbeat_at < now - FORGET_AFTER))
    return closed
