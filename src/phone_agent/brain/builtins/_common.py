"""Helpers the built-in tools share: the conversation's database transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.brain.tools import ToolContext
from phone_agent.errors import ToolError
from phone_agent.storage.db import transaction


@asynccontextmanager
async def db(ctx: ToolContext) -> AsyncIterator[AsyncSession]:
    """A transaction on the conversation's database."""
    if ctx.sessions is None:
        raise ToolError("Records cannot be saved right now; apologise and offer a call-back instead.")
    async with transaction(ctx.sessions) as session:
        yield session
