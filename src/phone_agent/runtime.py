"""The running process: what is shared by every call and request, plus the current ``Services``.

``Runtime`` holds only process-wide things: the database engine, the role, the control bus, the
caller prefetch, the background tasks, provider health, the HTTP pool, this process's instance id
(heartbeat, crash recovery: ``storage.instances``), and ``current`` - the ``Services`` built from
the settings in force. A call, a request or a command reads
``runtime.current`` once (``async with runtime.use() as services``) and passes it down; an admin
change (``apply_overrides``) builds a new ``Services`` and swaps it in, and the old one is closed
when the last user holding it lets go.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from phone_agent.brain.turn_locks import ConversationLocks
from phone_agent.config import Role, Settings, redact
from phone_agent.http_pool import HttpPool, new_http_pool
from phone_agent.memory.jobs import KnowledgeJobs
from phone_agent.memory.prefetch import CallerPrefetch
from phone_agent.memory.requests import forget_old_requests
from phone_agent.notifications.digest import run_daily_digest
from phone_agent.notifications.provider_alerts import alert_provider_failure
from phone_agent.ops.control import ControlBus
from phone_agent.ops.doctor.runner import StatusReportCache
from phone_agent.ops.heap import HeapTrimmer
from phone_agent.ops.load import LoadMonitor
from phone_agent.ops.provider_health import ProviderHealth
from phone_agent.ops.provider_log import ProviderLog
from phone_agent.services import Services
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.instances import beat, close_orphaned_calls, register_instance, stop_instance
from phone_agent.storage.overrides import load_overrides
from phone_agent.tasks import TaskOwner

T = TypeVar("T")
RETENTION_INTERVAL = 24 * 3600.0  # seconds between retention runs (``memory_retention_days``)
ROLES_TAKING_CALLS: tuple[Role, ...] = ("all", "voice-bridge")
ROLES_HOLDING_CALLS: tuple[Role, ...] = ("all", "orchestrator")  # the calls, messages and bookings


class Runtime:
    """Process-wide state owned by the app lifespan (or a command)."""

    def __init__(self, settings: Settings, role: Role, *, env: Mapping[str, str] | None = None) -> None:
        self.base_settings = settings
        self.role: Role = role
        self.env = env
        self.started_at = time.time()
        self.instance_id = uuid.uuid4().hex  # this process in ``instances`` and on the calls it holds
        self._registered = False
        self.engine: AsyncEngine = create_engine(settings.database_url)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.http: HttpPool = new_http_pool()
        self.tasks = TaskOwner("runtime")
        self.bus = ControlBus(redis_url=settings.redis_url)
        self.prefetch = CallerPrefetch(self.tasks)
        self.providers = ProviderHealth()
        self.providers.attach(
            ProviderLog(
                self.sessions,
                spawn=lambda coro, name: self.tasks.spawn(coro, name=name),
                on_failure=self._provider_failed,
                scrub=lambda text: redact(text, self.current.settings.secret_values()),
            )
        )
        self.doctor = StatusReportCache()
        self.load = LoadMonitor(
            max_calls=settings.max_calls_per_worker, max_lag_ms=settings.max_event_loop_lag_ms
        )
        self.heap = HeapTrimmer(self.load)
        self.conversations = ConversationLocks()  # one /v1/chat turn at a time per conversation
        self.knowledge_jobs = KnowledgeJobs()  # uploads and reindexes with progress
        self.admin_password_fingerprint: str | None = None  # the env password last synced (admin/auth)
        self._current: Services | None = None
        # run in the background whenever an admin change makes new settings current
        self.settings_listeners: list[Callable[[Settings], Coroutine[Any, Any, None]]] = []
        self._holders: dict[Services, int] = {}
        self._retired: set[Services] = set()

    @classmethod
    def create(cls, settings: Settings, role: Role, env: Mapping[str, str] | None = None) -> Runtime:
        """A runtime with a fresh engine for ``settings.database_url``."""
        return cls(settings, role, env=env)

    @property
    def takes_calls(self) -> bool:
        """True for the roles that run call pipelines (media streams)."""
        return self.role in ROLES_TAKING_CALLS

    @property
    def current(self) -> Services:
        """The Services of the settings in force (built on first use)."""
        if self._current is None:
            self._current = self._build(self.base_settings)
        return self._current

    def _build(self, settings: Settings) -> Services:
        return Services.build(
            settings, engine=self.engine, sessions=self.sessions, http=self.http, health=self.providers
        )

    @asynccontextmanager
    async def use(self, services: Services | None = None) -> AsyncIterator[Services]:
        """Read ``current`` once (or take ``services``) and keep it open until the block ends."""
        services = services or self.current
        self._holders[services] = self._holders.get(services, 0) + 1
        try:
            yield services
        finally:
            left = self._holders[services] - 1
            if left:
                self._holders[services] = left
            else:
                del self._holders[services]
                if services in self._retired:
                    await self._close(services)

    def spawn_with(
        self, services: Services, coro: Coroutine[Any, Any, T], *, name: str
    ) -> asyncio.Task[T] | None:
        """Run ``coro`` as an owned background task that keeps ``services`` open until it ends."""
        if self.tasks.closed:
            coro.close()
            return None

        async def held() -> T:
            async with self.use(services):
                return await coro

        return self.tasks.spawn(held(), name=name)

    def _provider_failed(self, provider: str, kind: str, detail: str) -> None:
        """A provider's first failure in this process's window: alert the owner (once, all workers)."""
        services = self.current
        alert = alert_provider_failure(services, provider=provider, kind=kind, detail=detail)
        self.spawn_with(services, alert, name=f"alert-{provider}")

    def spawner(self, services: Services) -> Callable[[Coroutine[Any, Any, Any], str], object]:
        """``spawn_with`` bound to ``services``: how a job runs in the background (see memory.jobs)."""
        return lambda coro, name: self.spawn_with(services, coro, name=name)

    async def replace(self, settings: Settings) -> Services:
        """Make ``settings`` current with new Services; the old ones close once nobody holds them."""
        return await self.swap(self._build(settings))

    async def swap(self, services: Services) -> Services:
        """Make ``services`` current; the previous ones close once nobody holds them."""
        old, self._current = self._current, services
        self.load.max_calls = services.settings.max_calls_per_worker
        self.load.max_lag_ms = services.settings.max_event_loop_lag_ms
        services.start_outbox()
        if old is not None and old is not services:
            if self._holders.get(old):
                self._retired.add(old)  # closed by the last ``use`` block holding it
            else:
                await self._close(old)
        return services

    async def _close(self, services: Services) -> None:
        self._retired.discard(services)
        try:
            await services.aclose()
        except Exception as exc:  # closing must never fail a call or a request
            logger.warning("closing replaced services failed: {}", type(exc).__name__)

    async def apply_overrides(self) -> Settings:
        """Re-read admin overrides from the database and make them current (new Services if changed)."""
        async with transaction(self.sessions) as session:
            overrides = await load_overrides(session)
        settings = self.base_settings.with_overrides(overrides) if overrides else self.base_settings
        if self._current is None or settings != self._current.settings:
            await self.replace(settings)
            for listener in self.settings_listeners:
                self.tasks.spawn(listener(settings), name="settings-changed")
        return self.current.settings

    async def start(self) -> None:
        """Load the admin overrides and start the control bus (other processes' changes reload here)."""
        try:
            await self.apply_overrides()
        except Exception as exc:  # the app still starts; /health reports the database as down
            logger.warning("database not ready, admin overrides not loaded: {}", type(exc).__name__)

        async def reload(info: dict[str, object]) -> None:
            await self.apply_overrides()
            logger.info("settings reloaded after a config change ({})", ", ".join(sorted(info)) or "all")

        self.bus.on_config_change(reload)
        await self.bus.start()
        self.current.start_outbox()  # what an earlier process queued is delivered without a new write
        self.tasks.spawn(self._heartbeat(), name="instance-heartbeat")
        # every role applies retention to its own database (in split mode the orchestrator holds the
        # calls and transcripts, the memory service the memories)
        self.tasks.spawn(self._apply_retention_daily(), name="memory-retention")
        if self.takes_calls:
            self.tasks.spawn(self.load.watch_lag(), name="event-loop-lag")
            self.tasks.spawn(self.heap.run(), name="heap-trim")  # memory back once the calls end
        if self.role in ROLES_HOLDING_CALLS:  # the owner's digest is read from the calls' database
            self.tasks.spawn(
                run_daily_digest(lambda: self.current.settings, self.sessions), name="daily-digest"
            )

    async def _apply_retention_daily(self) -> None:
        while True:
            async with self.use() as services:
                try:
                    await services.local_memory.purge_expired(services.settings.memory_retention_days)
                    await forget_old_requests(services.sessions)
                    await services.delete_orphaned_recordings()  # of the calls retention just deleted
                except Exception as exc:  # database not ready yet: try again next round
                    logger.warning("memory: retention purge failed: {}", type(exc).__name__)
            await asyncio.sleep(RETENTION_INTERVAL)

    async def _heartbeat(self) -> None:
        """Register this process, then beat; each round closes the calls of dead processes."""
        while True:
            settings = self.current.settings
            try:
                if not self._registered:
                    await register_instance(self.sessions, instance_id=self.instance_id, role=self.role)
                    self._registered = True
                else:
                    await beat(self.sessions, self.instance_id)
                await self.recover_crashed_calls()
            except Exception as exc:  # database not ready yet or briefly away: next round
                logger.warning("instance heartbeat failed: {}", type(exc).__name__)
            await asyncio.sleep(settings.instance_heartbeat_seconds)

    async def recover_crashed_calls(self) -> list[str]:
        """Close the calls held by dead processes as ``agent_crashed`` and learn from their turns."""
        services = self.current
        dead_after = timedelta(seconds=services.settings.instance_dead_after_seconds)
        closed = await close_orphaned_calls(self.sessions, dead_after=dead_after)
        for call_sid in closed:
            logger.warning("call {} was held by a process that died: closed as agent_crashed", call_sid)
            self.spawn_with(services, services.learn_after_call(call_sid), name=f"learn-{call_sid}")
        return closed

    async def close(self) -> None:
        """Cancel background tasks, stop the bus, close every Services, the pool and the engine."""
        await self.tasks.aclose()
        if self._registered:
            try:
                await stop_instance(self.sessions, self.instance_id)
            except Exception as exc:  # shutting down: the heartbeat's silence says the same
                logger.warning("could not mark this instance stopped: {}", type(exc).__name__)
        await self.bus.close()
        for services in [*self._retired, *([self._current] if self._current else [])]:
            await self._close(services)
        self._current = None
        self._holders.clear()
        await self.http.aclose()
        await self.engine.dispose()
