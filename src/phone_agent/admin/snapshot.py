"""The health snapshot behind ``/admin-status``: counts, endpoints, config sources; never a secret."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

from sqlalchemy import func, select

from phone_agent import __version__
from phone_agent.admin.calls import latency_summary
from phone_agent.admin.health import component_health, process_load, providers_configured
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.db import ping
from phone_agent.storage.migrate import current_revision, head_revision
from phone_agent.storage.tables import Call, Caller, Memory


async def database_status(runtime: Runtime) -> dict[str, Any]:
    """Reachability and migration state of the database."""
    try:
        await ping(runtime.engine)
        revision = await current_revision(runtime.engine)
    except Exception as exc:  # reported, not raised: the snapshot must always answer
        return {"ok": False, "error": type(exc).__name__, "backend": runtime.engine.dialect.name}
    head = head_revision()
    return {
        "ok": True,
        "backend": runtime.engine.dialect.name,
        "revision": revision,
        "head": head,
        "migrations_current": revision == head,
    }


async def counts(services: Services) -> dict[str, int]:
    """Numbers of callers, calls, memories, calls today and calls in progress."""
    today = datetime.combine(datetime.now(UTC).date(), dtime.min, tzinfo=UTC)
    async with services.sessions() as session:

        async def scalar(stmt: Any) -> int:
            return int((await session.execute(stmt)).scalar_one())

        return {
            "callers": await scalar(select(func.count()).select_from(Caller)),
            "calls": await scalar(select(func.count()).select_from(Call)),
            "memories": await scalar(select(func.count()).select_from(Memory)),
            "calls_today": await scalar(
                select(func.count()).select_from(Call).where(Call.started_at >= today)
            ),
            "active_calls": await scalar(
                select(func.count())
                .select_from(Call)
                .where(Call.status.in_(("in-progress", "ringing")), Call.ended_at.is_(None))
            ),
        }


async def build_snapshot(runtime: Runtime, services: Services) -> dict[str, Any]:
    """The whole /admin-status JSON."""
    s = services.settings
    db = await database_status(runtime)
    snapshot: dict[str, Any] = {
        "version": __version__,
        "role": runtime.role,
        "uptime_seconds": round(time.time() - runtime.started_at, 1),
        "database": db,
        "llm": {
            "provider": s.llm_provider,
            "base_url": s.shown("llm_base_url"),
            "model": s.llm_model,
            "secondary_base_url": s.shown("llm_secondary_base_url"),
            "secondary_model": s.llm_secondary_model,
        },
        "tts": {
            "provider": "elevenlabs",
            "voice_id": s.elevenlabs_voice_id,
            "model": s.tts_model,
            "stability": s.tts_stability,
            "similarity": s.tts_similarity,
            "style": s.tts_style,
            "speed": s.tts_speed,
        },
        "stt": {"provider": s.stt_provider, "model": s.stt_model},
        "memory": {
            "backend": s.memory_backend,
            "url": s.shown("memory_url") if s.memory_backend == "http" else None,
        },
        "providers_configured": providers_configured(s),
        "config": s.public_view(),
        "config_sources": {
            row["name"]: row["source"] for row in s.public_view() if row["source"] != "default"
        },
        "config_file": s.config_file,
    }
    snapshot["counts"] = await counts(services) if db["ok"] else None
    snapshot["health"] = await component_health(runtime, services)
    snapshot["load"] = process_load(runtime)
    if db["ok"]:
        async with services.sessions() as session:
            snapshot["latency"] = await latency_summary(session)
    else:
        snapshot["latency"] = None
    snapshot["doctor"] = await runtime.doctor.get(s, runtime.engine)  # cached 5 min (ops/doctor/runner.py)
    return snapshot
