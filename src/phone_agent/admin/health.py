"""Component health for the admin page and /admin-status: database, memory service, Redis, providers.

Providers are not probed (that would spend the owner's quota on every page view); code that talks
to one calls ``runtime.providers.record`` and the page shows when each was last seen OK or failing,
by any worker (the outcomes are stored: ``ops.provider_log``), with the failures of the last hour.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from phone_agent.config import Settings, redact
from phone_agent.ops.provider_health import ProviderHealth
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.db import ping

PROBE_TIMEOUT = 2.0


def providers_configured(settings: Settings) -> dict[str, bool]:
    """Which external providers have credentials."""
    s = settings
    return {
        "openai": s.openai_api_key is not None,
        "elevenlabs": s.elevenlabs_api_key is not None,
        "deepgram": s.deepgram_api_key is not None,
        "twilio": s.twilio_account_sid is not None and s.twilio_auth_token is not None,
        "llm_secondary": s.llm_secondary_base_url is not None,
    }


async def provider_health(providers: ProviderHealth, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per provider, as every worker saw it: configured, last OK / last error (unix times), whether
    the latest was OK, the last error and its kind, and the failures of the last hour by kind."""
    configured = {k: v for k, v in providers_configured(settings).items() if k != "llm_secondary"}
    report = await providers.report_shared(configured)
    secrets = settings.secret_values()
    for entry in report.values():
        if entry["last_error"]:
            entry["last_error"] = redact(entry["last_error"], secrets)
    return report


async def _database(runtime: Runtime) -> dict[str, Any]:
    try:
        await asyncio.wait_for(ping(runtime.engine), PROBE_TIMEOUT)
    except Exception as exc:  # reported, not raised: health must always answer
        return {"ok": False, "detail": type(exc).__name__}
    return {"ok": True, "detail": runtime.engine.dialect.name}


async def _redis(settings: Settings) -> dict[str, Any] | None:
    url = settings.redis_url
    if not url:
        return None
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)
    try:
        await client.ping()
    except Exception as exc:  # any client error means down
        return {"ok": False, "detail": type(exc).__name__}
    finally:
        await client.aclose()
    return {"ok": True, "detail": "ping ok"}


async def _memory(settings: Settings, database: dict[str, Any]) -> dict[str, Any]:
    s = settings
    if s.memory_backend != "http":
        return {"ok": database["ok"], "detail": "in-process (local)"}
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
            response = await client.get(s.memory_url.rstrip("/") + "/health")
    except httpx.HTTPError as exc:
        return {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}
    return {"ok": response.status_code == 200, "detail": f"HTTP {response.status_code}"}


def process_load(runtime: Runtime) -> dict[str, Any] | None:
    """The answering process's calls and event loop (None where this process takes no calls)."""
    return runtime.load.status() if runtime.takes_calls else None


async def component_health(runtime: Runtime, services: Services) -> dict[str, Any]:
    """{database, memory, redis (when used), providers} each with ok + detail."""
    settings = services.settings
    database = await _database(runtime)
    memory, redis = await asyncio.gather(_memory(settings, database), _redis(settings))
    components: dict[str, Any] = {"database": database, "memory": memory}
    if redis is not None:
        components["redis"] = redis
    components["providers"] = await provider_health(runtime.providers, settings)
    return components
