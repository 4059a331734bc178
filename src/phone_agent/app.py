"""``create_app(settings, role)``: the FastAPI app of one role. The lifespan owns the ``Runtime``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from loguru import logger

from phone_agent import __version__
from phone_agent.admin import api as admin_api
from phone_agent.admin import auth as admin_auth
from phone_agent.admin import connections as admin_connections
from phone_agent.admin import exports as admin_exports
from phone_agent.admin import knowledge as admin_knowledge
from phone_agent.admin import outbound as admin_outbound
from phone_agent.admin import owner as admin_owner
from phone_agent.admin import pages as admin_pages
from phone_agent.admin import recordings as admin_recordings
from phone_agent.admin import routing as admin_routing
from phone_agent.admin import softphone as admin_softphone
from phone_agent.admin import status as admin_status
from phone_agent.admin import try_it as admin_try_it
from phone_agent.api import calls, chat, health, media_stream, memory, metrics, outbound, phone, transfer
from phone_agent.api.proxy import TrustedProxyHeaders
from phone_agent.config import Role, Settings
from phone_agent.errors import PhoneAgentError
from phone_agent.local_models import require_local_stack
from phone_agent.ops.heap import freeze_start_up_heap
from phone_agent.runtime import ROLES_TAKING_CALLS, Runtime
from phone_agent.storage.db import is_sqlite
from phone_agent.storage.migrate import upgrade


def routers_for(role: Role) -> list[APIRouter]:
    """The HTTP/websocket routes one role serves ('all' serves every role's)."""
    common = [health.router, metrics.router]
    # One router per line: several features add theirs here.
    orchestrator = [
        admin_status.router,
        admin_pages.public,
        admin_pages.router,
        admin_api.router,
        admin_knowledge.router,
        admin_routing.router,
        admin_try_it.router,
        admin_connections.router,
        admin_owner.router,
        admin_exports.router,
        admin_outbound.router,
        admin_recordings.router,
        phone.router,
        chat.router,
        transfer.router,
        calls.router,
        outbound.router,
    ]
    voice_bridge: list[APIRouter] = [
        media_stream.router,
        admin_softphone.router,  # the admin page's softphone runs calls, so the voice bridge serves it
    ]
    memory_service: list[APIRouter] = [
        memory.router,
    ]
    by_role = {
        "orchestrator": orchestrator,
        "voice-bridge": voice_bridge,
        "memory": memory_service,
        "all": orchestrator + voice_bridge + memory_service,
    }
    return common + by_role[role]


ROLES_SERVING_ADMIN = ("all", "orchestrator")


async def announce_first_run(runtime: Runtime) -> None:
    """With no admin password yet, write the one-time setup code and say where it is."""
    try:
        path = await admin_auth.prepare_first_run(runtime)
    except Exception as exc:  # the database is down: start anyway (/health says so), no code yet
        logger.warning("first run check skipped: {}: {}", type(exc).__name__, exc)
        return
    if path is not None:
        logger.warning(
            "first run: no admin password is set. Open the admin page's /admin/setup and enter the "
            "one-time setup code from {} (or set ADMIN_PASSWORD and restart).",
            path,
        )


async def preload_call_models(settings: Settings) -> None:
    """Load the models calls need (VAD, turn detection; local speech when configured) and the modules
    a call imports on first use before the first call, off the loop."""
    from phone_agent.voice.local import preload_local_models
    from phone_agent.voice.shared_models import import_call_modules, preload_models

    await asyncio.to_thread(preload_models)
    await asyncio.to_thread(import_call_modules)
    await preload_local_models(settings)


def prepare_routes(app: FastAPI) -> None:
    """Build every route's request handling now: FastAPI builds a router's routes (their
    dependencies, from the endpoints' signatures) on the first request that reaches it, which
    would otherwise be a call's webhook and its media stream (~0.1-0.4 s of CPU on the loop)."""
    for kind in ("http", "websocket"):
        scope: dict[str, Any] = {
            "type": kind,
            "path": "/",
            "method": "GET",
            "root_path": "",
            "headers": [],
            "query_string": b"",
        }
        for route in app.router.routes:
            route.matches(scope)  # every router lists its routes before matching any of them


def greeting_recorder() -> Callable[[Settings], Coroutine[Any, Any, None]]:
    """Records the greeting so even a new install's first caller is greeted from memory
    (``voice/greeting_recording.py``; imported only by a process that takes calls)."""
    from phone_agent.voice.greeting_recording import GreetingRecorder

    return GreetingRecorder()


async def close_call_models() -> None:
    """Stop the model threads calls share (the Silero batcher, the smart-turn pool)."""
    from phone_agent.voice.shared_models import close_models

    await asyncio.to_thread(close_models)


def create_app(
    settings: Settings,
    role: Role = "all",
    *,
    migrate: bool | None = None,
    env: Mapping[str, str] | None = None,
    freeze_heap: bool = False,
    record_greeting: bool = False,
) -> FastAPI:
    """Build the app for ``role``.

    Args:
        settings: the one Settings object, passed down to everything.
        role: all | orchestrator | voice-bridge | memory.
        migrate: apply migrations on start; default: only for the embedded SQLite database.
        env: the environment the settings came from (for child components that need it).
        freeze_heap: once started, keep start-up's objects out of later collections
            (``ops/heap.py``; ``serve`` sets it, a process starting many apps must not).
        record_greeting: record the phone greeting while starting when no earlier process has,
            and after an admin change (``voice/greeting_recording.py``; ``serve`` sets it: one TTS
            request per new greeting or voice).
    """
    if role in ROLES_TAKING_CALLS:
        require_local_stack(settings)  # voice_stack=local without [local]: stop now, with the install command
    runtime = Runtime.create(settings, role, env)
    should_migrate = is_sqlite(settings.database_url) if migrate is None else migrate

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        record_greeting_now = greeting_recorder() if record_greeting and runtime.takes_calls else None
        if should_migrate:
            await upgrade(runtime.engine)
        await runtime.start()
        # the first call is as quick as the hundredth: its routes and models are ready before /health
        await asyncio.gather(
            asyncio.to_thread(prepare_routes, app),
            *([preload_call_models(runtime.current.settings)] if runtime.takes_calls else []),
            *([record_greeting_now(runtime.current.settings)] if record_greeting_now else []),
        )
        if record_greeting_now:  # and again whenever an admin change makes new settings current
            runtime.settings_listeners.append(record_greeting_now)
        if freeze_heap:
            logger.debug("start-up heap frozen: {} objects", freeze_start_up_heap())
        logger.info(
            "phone-agent {} started: role={} database={}", __version__, role, runtime.engine.dialect.name
        )
        if role in ROLES_SERVING_ADMIN:
            await announce_first_run(runtime)
        try:
            yield
        finally:
            await runtime.close()
            if runtime.takes_calls:
                await close_call_models()

    app = FastAPI(title="phone-agent", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.add_middleware(TrustedProxyHeaders, trusted=settings.trusted_proxies)

    @app.exception_handler(PhoneAgentError)
    async def phone_agent_error(_request: Request, exc: PhoneAgentError) -> JSONResponse:
        return JSONResponse(
            {"error": {"type": type(exc).__name__, "message": str(exc)}}, status_code=exc.status_code
        )

    for router in routers_for(role):
        app.include_router(router)
    return app
