"""``Services``: everything built from one ``Settings``, typed, frozen, and closed as one.

A call, a request and a CLI command each take one ``Services`` (``runtime.current``, or
``Services.build`` in a command) at their start and pass it down, so every part of that call sees
the same settings, memory store, LLM chain and call control for its whole life, whatever the admin
saves meanwhile. An admin change builds a new ``Services`` (``Runtime.apply_overrides``); the old
one is closed when the last call holding it ends (``Runtime.use``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from phone_agent.brain.agent import Agent
from phone_agent.brain.builtins import default_registry
from phone_agent.brain.followup import text_after_missed_call
from phone_agent.brain.llm import LLMChain
from phone_agent.brain.tools import ToolContext, ToolRegistry
from phone_agent.config import Settings
from phone_agent.http_pool import HttpPool, new_http_pool
from phone_agent.memory.base import CallerContext, MemoryStore
from phone_agent.memory.calls import delete_caller, fetch_caller_context, learn_quietly, start_outbox_replay
from phone_agent.memory.extraction import ExtractedFacts
from phone_agent.memory.factory import build_memory_store, local_store
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.ops.provider_health import ProviderHealth
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.routing import forget_number
from phone_agent.tasks import TaskOwner
from phone_agent.telephony.control import CallControl
from phone_agent.telephony.recordings import delete_orphaned_recordings
from phone_agent.telephony.stream_token import signing_key


@dataclass(frozen=True, eq=False)
class Services:
    """The components of one ``Settings``; build with ``Services.build``, close with ``aclose()``."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    memory: MemoryStore  # what the settings ask for: in-process, or the memory service over HTTP
    local_memory: SQLMemoryStore  # the store on this process's own database (what the memory API serves)
    llm: LLMChain
    control: CallControl
    signing_key: bytes
    http: HttpPool  # the process's connection pool (owned by the Runtime unless ``owns_http``)
    tools: ToolRegistry
    owns_http: bool = False
    owned_engine: AsyncEngine | None = field(default=None, repr=False)  # a command's own engine
    closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set by ``aclose``

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        engine: AsyncEngine | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        http: HttpPool | None = None,
        health: ProviderHealth | None = None,
    ) -> Services:
        """Build every component for ``settings``.

        Args:
            settings: the one Settings everything here is built from.
            engine: the process's database engine (a command may omit it: one is made and owned).
            sessions: the engine's session factory (made from ``engine`` when omitted).
            http: the process's connection pool (one is made and owned when omitted).
            health: the process's provider health, where provider failures are reported.
        """
        owned_engine = None
        if engine is None:
            engine = owned_engine = create_engine(settings.database_url)
        sessions = sessions or session_factory(engine)
        pool = http if http is not None else new_http_pool()
        local = local_store(settings, engine=engine, sessions=sessions, http=pool)
        return cls(
            settings=settings,
            sessions=sessions,
            memory=build_memory_store(settings, local=local),
            local_memory=local,
            llm=LLMChain.from_settings(settings, http=pool, health=health),
            control=CallControl(settings),
            signing_key=signing_key(settings),
            http=pool,
            tools=default_registry(),
            owns_http=http is None,
            owned_engine=owned_engine,
        )

    def agent(self) -> Agent:
        """The brain for HTTP conversations (``/v1/chat``, the admin's "Try it", ``phone-agent chat``)."""
        return Agent(self.llm, self.tools, self.memory)

    def tool_context(
        self, *, caller_phone: str | None, tasks: TaskOwner | None = None, **fields: Any
    ) -> ToolContext:
        """A ``ToolContext`` for one conversation on these services."""
        return ToolContext(
            settings=self.settings,
            sessions=self.sessions,
            control=self.control,
            memory=self.memory,
            caller_phone=caller_phone,
            tasks=tasks,
            **fields,
        )

    async def caller_context(self, phone: str) -> CallerContext:
        """The caller's profile and top memories (bounded, never raises)."""
        return await fetch_caller_context(self.memory, phone)

    async def learn_after_call(self, call_sid: str) -> ExtractedFacts | None:
        """Review a finished call and learn from its transcript; text the caller of a missed call when
        the settings say so (errors logged; run it as an owned background task)."""
        facts = await learn_quietly(  # on the process's pool: no SSL context per call
            settings=self.settings,
            sessions=self.sessions,
            store=self.memory,
            call_sid=call_sid,
            http=self.http,
        )
        try:
            await text_after_missed_call(
                settings=self.settings, sessions=self.sessions, control=self.control, call_sid=call_sid
            )
        except Exception as exc:  # a follow-up must not disturb the next call
            logger.warning("follow-up of call {} failed: {}", call_sid, type(exc).__name__)
        return facts

    def start_outbox(self) -> None:
        """With the memory service over HTTP: replay its outbox (writes, learning jobs) from now on."""
        start_outbox_replay(settings=self.settings, sessions=self.sessions, store=self.memory)

    async def forget_caller(self, phone: str) -> bool:
        """Privacy delete: the caller's profile, memories, calls, transcripts and call recordings
        (at Twilio too), everywhere, and the number in routing rules' number lists."""
        deleted = await delete_caller(store=self.memory, local=self.local_memory, phone=phone)
        await self.delete_orphaned_recordings()
        return await forget_number(self.sessions, phone, self.settings.default_country) > 0 or deleted

    async def delete_orphaned_recordings(self) -> int:
        """Delete the recordings (at Twilio, then their rows) whose calls are gone."""
        return await delete_orphaned_recordings(self.control, self.sessions)

    async def aclose(self) -> None:
        """Close what these services opened (the shared pool and engine only when they own them)."""
        if self.closed.is_set():
            return
        self.closed.set()
        await self.llm.aclose()
        await self.control.aclose()
        if self.memory is not self.local_memory:
            await self.memory.aclose()
        await self.local_memory.aclose()
        if self.owns_http:
            await self.http.aclose()
        if self.owned_engine is not None:
            await self.owned_engine.dispose()
