"""Helpers the built-in tools share: the database session and the caller's number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.brain.tools import ToolContext
from phone_agent.errors import ToolError
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Caller


@asynccontextmanager
async def db(ctx: ToolContext) -> AsyncIterator[AsyncSession]:
    """A transaction on the conversation's database."""
    if ctx.sessions is None:
        raise ToolError("Records cannot be saved right now; apologise and offer a call-back instead.")
    async with transaction(ctx.sessions) as session:
        yield session


async def caller_id(session: AsyncSession, phone: str | None) -> int | None:
    """callers.id of a known caller (rows are created by the memory store, not here)."""
    if not phone:
        return None
    return await session.scalar(select(Caller.id).where(Caller.phone == phone))
