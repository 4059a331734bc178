""" "Test connection": one cheap real request to a provider with the settings the owner is looking at.

``POST /admin/api/test-connection`` ``{"provider": "openai", "values": {...}}`` tests the saved
settings with the form's unsaved values on top (a secret left as its mask, or blank, keeps the saved
one), so a key can be tried before it is saved. Each provider gets the lightest request that proves
the key: OpenAI (and any OpenAI-compatible LLM endpoint) lists its models, ElevenLabs reads the
user, Deepgram lists the key's projects, Twilio fetches the account. The answer says ``ok``, or
``key_rejected`` (401/403), ``unreachable``, ``not_configured`` or ``error`` with the provider's own
message, never a secret (every configured and submitted secret is redacted from it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import httpx
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from phone_agent.admin import auth
from phone_agent.api.deps import ServicesDep
from phone_agent.config import Settings, is_secret, redact, shown_value
from phone_agent.errors import ConfigError
from phone_agent.voice.services import websocket_base

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])

TIMEOUT_SECS = 10.0
FIELDS: dict[str, tuple[str, ...]] = {
    "openai": ("openai_api_key", "openai_base_url"),
    "llm": ("llm_provider", "llm_base_url", "llm_model", "openai_api_key"),
    "elevenlabs": ("elevenlabs_api_key", "elevenlabs_base_url"),
    "deepgram": ("deepgram_api_key", "deepgram_base_url"),
    "twilio": ("twilio_account_sid", "twilio_auth_token", "twilio_api_base_url"),
}
NAMES = {
    "openai": "OpenAI",
    "llm": "The LLM endpoint",
    "elevenlabs": "ElevenLabs",
    "deepgram": "Deepgram",
    "twilio": "Twilio",
}


@dataclass(frozen=True)
class ConnectionResult:
    """What a test found: ``status`` is ok | key_rejected | unreachable | not_configured | error."""

    provider: str
    ok: bool
    status: str
    message: str


class ConnectionTest(BaseModel):
    """A provider to test, and the form's values to test it with (unsaved values win)."""

    provider: str = Field(pattern="^(openai|llm|elevenlabs|deepgram|twilio)$")
    values: dict[str, str] = Field(default_factory=dict, max_length=8)


def settings_to_test(settings: Settings, provider: str, values: dict[str, str]) -> Settings:
    """The saved settings with the submitted values of this provider's fields on top.

    A secret submitted blank or as its own mask keeps the saved secret. Raises ConfigError for a
    value the Settings rules refuse.
    """
    changes: dict[str, Any] = {}
    for name in FIELDS[provider]:
        raw = values.get(name)
        if raw is None:
            continue
        value = raw.strip()
        current = getattr(settings, name)
        if is_secret(name) and (not value or value == shown_value(name, current)):
            continue
        if value == str(shown_value(name, current)):
            continue  # unchanged (URLs come back with their credentials masked)
        changes[name] = value or None
    return settings.with_overrides(changes) if changes else settings


async def check_connection(
    settings: Settings, provider: str, *, extra_secrets: tuple[str, ...] = ()
) -> ConnectionResult:
    """Make the provider's one cheap request with ``settings``; never raises, never shows a secret."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECS, follow_redirects=False) as http:
            result = await _TESTS[provider](http, settings)
    except httpx.TimeoutException:
        result = ConnectionResult(
            provider, False, "unreachable", f"{NAMES[provider]} did not answer in time."
        )
    except httpx.HTTPError as exc:
        result = ConnectionResult(
            provider,
            False,
            "unreachable",
            f"{NAMES[provider]} could not be reached ({type(exc).__name__}: {exc}).",
        )
    secrets = [*settings.secret_values(), *extra_secrets]
    return ConnectionResult(result.provider, result.ok, result.status, redact(result.message, secrets))


def _provider_message(response: httpx.Response) -> str:
    """The error message a provider put in its JSON body (OpenAI, ElevenLabs, Deepgram, Twilio shapes)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(body, dict):
        return ""
    error, detail = body.get("error"), body.get("detail")
    for candidate in (
        error.get("message") if isinstance(error, dict) else error,
        detail.get("message") if isinstance(detail, dict) else detail,
        body.get("err_msg"),
        body.get("message"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate[:200]
    return ""


def _failure(provider: str, response: httpx.Response) -> ConnectionResult:
    said = _provider_message(response)
    said = f": {said.rstrip('.')}" if said else ""
    if response.status_code in (401, 403):
        what = "Account SID / auth token" if provider == "twilio" else "Key"
        return ConnectionResult(
            provider,
            False,
            "key_rejected",
            f"{what} rejected (HTTP {response.status_code}{said}).",
        )
    return ConnectionResult(
        provider, False, "error", f"{NAMES[provider]} answered HTTP {response.status_code}{said}."
    )


def _missing(provider: str, *names: str) -> ConnectionResult:
    return ConnectionResult(provider, False, "not_configured", f"{' and '.join(names)} not set.")


async def _models(http: httpx.AsyncClient, base_url: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await http.get(f"{base_url.rstrip('/')}/models", headers=headers)


async def _openai(http: httpx.AsyncClient, s: Settings) -> ConnectionResult:
    key = s.secret("openai_api_key")
    if not key:
        return _missing("openai", "OPENAI_API_KEY is")
    response = await _models(http, s.openai_base_url, key)
    if response.status_code != 200:
        return _failure("openai", response)
    count = len(response.json().get("data") or [])
    return ConnectionResult("openai", True, "ok", f"Key accepted ({count} models available).")


async def _llm(http: httpx.AsyncClient, s: Settings) -> ConnectionResult:
    response = await _models(http, s.llm_base_url, s.secret("openai_api_key"))
    if response.status_code != 200:
        return _failure("llm", response)
    models = {str(m.get("id")) for m in response.json().get("data") or [] if isinstance(m, dict)}
    if models and s.llm_model not in models:
        return ConnectionResult("llm", False, "error", f"Reached, but it has no model {s.llm_model!r}.")
    return ConnectionResult("llm", True, "ok", f"Reached; model {s.llm_model!r} is available.")


async def _elevenlabs(http: httpx.AsyncClient, s: Settings) -> ConnectionResult:
    key = s.secret("elevenlabs_api_key")
    if not key:
        return _missing("elevenlabs", "ELEVENLABS_API_KEY is")
    response = await http.get(f"{s.elevenlabs_base_url.rstrip('/')}/v1/user", headers={"xi-api-key": key})
    if response.status_code == 401 and "missing_permissions" in response.text:
        return ConnectionResult("elevenlabs", True, "ok", "Key accepted (it may not read the account).")
    if response.status_code != 200:
        return _failure("elevenlabs", response)
    tier = (response.json().get("subscription") or {}).get("tier")
    return ConnectionResult("elevenlabs", True, "ok", "Key accepted" + (f" (plan: {tier})." if tier else "."))


async def _deepgram(http: httpx.AsyncClient, s: Settings) -> ConnectionResult:
    key = s.secret("deepgram_api_key")
    if not key:
        return _missing("deepgram", "DEEPGRAM_API_KEY is")
    base = websocket_base(s.deepgram_base_url).replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    response = await http.get(f"{base.rstrip('/')}/v1/projects", headers={"Authorization": f"Token {key}"})
    if response.status_code != 200:
        return _failure("deepgram", response)
    count = len(response.json().get("projects") or [])
    return ConnectionResult("deepgram", True, "ok", f"Key accepted ({count} project{'s' * (count != 1)}).")


async def _twilio(http: httpx.AsyncClient, s: Settings) -> ConnectionResult:
    token = s.secret("twilio_auth_token")
    if not s.twilio_account_sid or not token:
        return _missing("twilio", "TWILIO_ACCOUNT_SID and/or TWILIO_AUTH_TOKEN are")
    url = f"{s.twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/{s.twilio_account_sid}.json"
    response = await http.get(url, auth=(s.twilio_account_sid, token))
    if response.status_code != 200:
        return _failure("twilio", response)
    status = response.json().get("status")
    if status != "active":
        return ConnectionResult("twilio", False, "error", f"The account is {status!r}, not active.")
    return ConnectionResult("twilio", True, "ok", "Account SID and auth token accepted (account active).")


_TESTS = {"openai": _openai, "llm": _llm, "elevenlabs": _elevenlabs, "deepgram": _deepgram, "twilio": _twilio}


@router.post("/admin/api/test-connection")
async def test_connection_route(body: ConnectionTest, services: ServicesDep) -> dict[str, Any]:
    """Test one provider with the saved settings and the form's values (see the module docstring)."""
    try:
        settings = settings_to_test(services.settings, body.provider, body.values)
    except ConfigError as exc:
        message = redact(str(exc), [v for k, v in body.values.items() if is_secret(k) and v])
        return asdict(ConnectionResult(body.provider, False, "invalid", message))
    submitted = tuple(v for k, v in body.values.items() if is_secret(k) and v)
    return asdict(await check_connection(settings, body.provider, extra_secrets=submitted))
