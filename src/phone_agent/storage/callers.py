"""Lookups of the ``callers`` table shared by call records, tools and webhooks (rows are created by
the memory store, which owns a caller's profile)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import Caller


async def caller_by_phone(session: AsyncSession, phone: str | None) -> Caller | None:
    """The caller with this number, if memory knows one."""
    if not phone:
        return None
    return await session.scalar(select(Caller).where(Caller.phone == normalise_phone(phone)))


async def caller_id(session: AsyncSession, phone: str | None) -> int | None:
    """``callers.id`` of a known caller, else None."""
    if not phone:
        return None
    return await session.scalar(select(Caller.id).where(Caller.phone == normalise_phone(phone)))
