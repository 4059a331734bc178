"""The running process's shared state: current Settings, database, and the role it serves.

Built once by ``create_app`` and handed to routers through ``api.deps``. Settings are immutable;
an admin change swaps ``runtime.settings`` for a new object, so calls already running keep theirs
and new calls get the new values without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from phone_agent.brain.turn_locks import ConversationLocks
from phone_agent.config import Role, Settings
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.overrides import load_overrides


@dataclass
class Runtime:
    """Process-wide state owned by the app lifespan."""

    settings: Settings
    role: Role
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    base_settings: Settings
    env: Mapping[str, str] | None = None
    started_at: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)
    conversations: ConversationLocks = field(default_factory=ConversationLocks)  # one /v1/chat turn at a time

    @classmethod
    def create(cls, settings: Settings, role: Role, env: Mapping[str, str] | None = None) -> Runtime:
        """A runtime with a fresh engine for ``settings.database_url``."""
        engine = create_engine(settings.database_url)
        return cls(
            settings=settings,
            role=role,
            engine=engine,
            sessions=session_factory(engine),
            base_settings=settings,
            env=env,
        )

    async def apply_overrides(self) -> Settings:
        """Re-read admin overrides from the database and make them current."""
        async with transaction(self.sessions) as session:
            overrides = await load_overrides(session)
        self.settings = self.base_settings.with_overrides(overrides) if overrides else self.base_settings
        return self.settings

    async def close(self) -> None:
        """Close what components left in ``extras`` (anything with ``aclose``), then the pool."""
        for extra in list(self.extras.values()):
            closer = getattr(extra, "aclose", None)
            if closer is not None:
                await closer()
        self.extras.clear()
        await self.engine.dispose()
