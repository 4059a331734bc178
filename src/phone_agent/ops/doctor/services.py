"""Doctor checks of the agent's own services: database, migrations, memory service, Redis, ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from phone_agent.ops.doctor.model import DoctorContext, Outcome, check, fail, http_problem, ok, warn
from phone_agent.storage.db import create_engine, ping
from phone_agent.storage.migrate import current_revision, head_revision


@asynccontextmanager
async def _engine(ctx: DoctorContext) -> AsyncIterator[Any]:
    if ctx.engine is not None:
        yield ctx.engine
        return
    engine = create_engine(ctx.settings.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def _where(ctx: DoctorContext) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(ctx.settings.database_url)
    return f"{url.get_backend_name()} {url.host or url.database}"


@check("database", "storage", on_timeout="The database did not answer; is it running and reachable?")
async def database(ctx: DoctorContext) -> Outcome:
    """The database answers."""
    try:
        async with _engine(ctx) as engine:
            await ping(engine)
    except Exception as exc:  # any driver error: report it, never crash the doctor
        return fail(
            f"{_where(ctx)} unreachable: {type(exc).__name__}: {str(exc)[:160]}",
            "Start the database, or fix DATABASE_URL (postgresql+asyncpg://user:pass@host/db).",
        )
    return ok(f"{_where(ctx)} answers")


@check("migrations", "storage", on_timeout="The database did not answer.")
async def migrations(ctx: DoctorContext) -> Outcome:
    """The database schema is at the newest migration."""
    head = head_revision()
    try:
        async with _engine(ctx) as engine:
            current = await current_revision(engine)
    except Exception as exc:
        return fail(f"cannot read the schema revision: {type(exc).__name__}", "Fix the database check first.")
    if current != head:
        return fail(
            f"database at {current or 'no revision (empty)'}, code expects {head}",
            "Run `phone-agent db upgrade` (back up PostgreSQL first).",
        )
    return ok(f"schema at {head}")


@check("memory.service", "services", on_timeout="The memory service did not answer /health.")
async def memory_service(ctx: DoctorContext) -> Outcome:
    """In split mode (memory_backend=http) the memory service answers /health."""
    s = ctx.settings
    if s.memory_backend != "http":
        return ok("in-process (memory_backend=local): no service to check")
    headers = {}
    token = s.secret("memory_service_token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    shown = s.shown("memory_url")
    try:
        response = await ctx.http.get(f"{s.memory_url}/health", headers=headers)
    except Exception as exc:
        return fail(
            f"{shown} unreachable: {type(exc).__name__}",
            "Start it (`phone-agent serve --role memory` / systemctl start phone-agent-memory) "
            "or fix memory_url.",
        )
    if response.status_code != 200:
        return fail(http_problem(f"memory service {shown}", response), "See the memory service logs.")
    return ok(f"{shown}/health: {response.json().get('status', 'ok')}")


@check("redis", "services", on_timeout="Redis did not answer PING.")
async def redis_check(ctx: DoctorContext) -> Outcome:
    """Redis answers PING when redis_url is set (needed for call control across processes)."""
    s = ctx.settings
    if not s.redis_url:
        if await ctx.running_role() == "orchestrator":
            return warn(
                "redis_url is not set but the roles run as separate processes: admin hang-up/transfer "
                "and config changes cannot reach the voice bridge",
                "Set REDIS_URL=redis://127.0.0.1:6379/0 for every role.",
            )
        return ok("not configured (one process needs no Redis)")
    import redis.asyncio as redis

    client = redis.from_url(s.redis_url, socket_timeout=ctx.timeout, socket_connect_timeout=ctx.timeout)
    try:
        await client.ping()
        info = await client.info("server")
    except Exception as exc:
        return fail(
            f"Redis at {_redis_where(s.redis_url)} unreachable: {type(exc).__name__}",
            "Start Redis (systemctl start redis-server) or fix REDIS_URL.",
        )
    finally:
        await client.aclose()
    return ok(f"Redis {info.get('redis_version', '?')} at {_redis_where(s.redis_url)} answers PING")


def _redis_where(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


async def _listening(host: str, port: int, wait: float) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), wait)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


START = {
    "orchestrator": "systemctl start phone-agent-orchestrator (or `phone-agent serve`)",
    "voice-bridge": "systemctl start phone-agent-voice-bridge (or `phone-agent serve --role voice-bridge`)",
    "memory": "systemctl start phone-agent-memory (or `phone-agent serve --role memory`)",
}


async def _port_check(ctx: DoctorContext, role: str, port: int) -> Outcome:
    host = ctx.host_of(role)
    if await _listening(host, port, min(ctx.timeout, 3.0)):
        return ok(f"{role} listening on {host}:{port}")
    if role == "orchestrator":
        return fail(f"nothing listens on {host}:{port}", f"Start it: {START[role]}.")
    if role == "memory" and ctx.settings.memory_backend != "http":
        return ok("not needed: memory runs in-process (memory_backend=local)")
    running = await ctx.running_role()
    if running == "all":
        return ok(f"served by the all-in-one process on :{ctx.settings.orchestrator_port}")
    if running == "orchestrator":
        return fail(
            f"the orchestrator runs alone but nothing listens on {host}:{port}",
            f"Start it: {START[role]}.",
        )
    return warn(
        f"nothing listens on {host}:{port}",
        f"Fine when `phone-agent serve` runs every role in one process; else {START[role]}.",
    )


@check("ports.orchestrator", "ports")
async def port_orchestrator(ctx: DoctorContext) -> Outcome:
    """The orchestrator's port is listening."""
    return await _port_check(ctx, "orchestrator", ctx.settings.orchestrator_port)


@check("ports.voice-bridge", "ports")
async def port_voice_bridge(ctx: DoctorContext) -> Outcome:
    """The voice bridge's port is listening (or the all-in-one process serves it)."""
    return await _port_check(ctx, "voice-bridge", ctx.settings.voice_bridge_port)


@check("ports.memory", "ports")
async def port_memory(ctx: DoctorContext) -> Outcome:
    """The memory service's port is listening (or memory runs in-process)."""
    return await _port_check(ctx, "memory", ctx.settings.memory_port)
