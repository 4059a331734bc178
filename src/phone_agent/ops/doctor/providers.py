"""Doctor checks of the external providers: Twilio, OpenAI, ElevenLabs (each reached via Settings URLs)."""

from __future__ import annotations

from typing import Any

import httpx

from phone_agent.config import Settings
from phone_agent.ops.doctor.model import DoctorContext, Outcome, check, fail, http_problem, ok, warn

TWILIO_CONSOLE = "console.twilio.com → Account → API keys & tokens"


# --- Twilio ---------------------------------------------------------------------------------------
def _twilio_auth(settings: Settings) -> tuple[str, str] | None:
    token = settings.secret("twilio_auth_token")
    if not settings.twilio_account_sid or not token:
        return None
    return settings.twilio_account_sid, token


def _twilio_api(settings: Settings) -> str:
    return f"{settings.twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/{settings.twilio_account_sid}"


def webhook_url(settings: Settings) -> str | None:
    """The voice webhook the Twilio number must call: PUBLIC_URL/phone/incoming."""
    return f"{settings.public_url}/phone/incoming" if settings.public_url else None


@check("twilio.account", "twilio", on_timeout="Twilio's API did not answer; check outbound HTTPS.")
async def twilio_account(ctx: DoctorContext) -> Outcome:
    """The account SID + auth token are accepted (account fetch)."""
    auth = _twilio_auth(ctx.settings)
    if auth is None:
        return fail(
            "TWILIO_ACCOUNT_SID and/or TWILIO_AUTH_TOKEN are not set",
            f"Set both (from {TWILIO_CONSOLE}) in the environment or config.json.",
        )
    response = await ctx.http.get(_twilio_api(ctx.settings) + ".json", auth=auth)
    if response.status_code in (401, 403, 404):
        return fail(
            http_problem("Twilio", response) + " (account SID / auth token rejected)",
            f"Copy the Account SID and Auth Token again from {TWILIO_CONSOLE}.",
        )
    if response.status_code != 200:
        return fail(http_problem("Twilio", response), "Retry later; see status.twilio.com.")
    account = response.json()
    if account.get("status") != "active":
        return fail(
            f"account {auth[0][:8]}… is {account.get('status')!r}",
            "Reactivate the account in the Twilio console.",
        )
    return ok(f"account {auth[0][:8]}… is active ({account.get('friendly_name', '')})")


async def find_number(ctx: DoctorContext) -> dict[str, Any] | None:
    """The IncomingPhoneNumber resource of settings.twilio_phone_number (None if not on the account)."""
    settings = ctx.settings
    auth = _twilio_auth(settings)
    assert auth is not None
    response = await ctx.http.get(
        _twilio_api(settings) + "/IncomingPhoneNumbers.json",
        params={"PhoneNumber": settings.twilio_phone_number},
        auth=auth,
    )
    response.raise_for_status()
    numbers = response.json().get("incoming_phone_numbers") or []
    return numbers[0] if numbers else None


@check("twilio.webhook", "twilio", on_timeout="Twilio's API did not answer; check outbound HTTPS.")
async def twilio_webhook(ctx: DoctorContext) -> Outcome:
    """The number's voice webhook is PUBLIC_URL/phone/incoming (POST)."""
    settings = ctx.settings
    missing = [
        name
        for name, value in (
            ("PUBLIC_URL", settings.public_url),
            ("TWILIO_PHONE_NUMBER", settings.twilio_phone_number),
            ("TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN", _twilio_auth(settings)),
        )
        if not value
    ]
    if missing:
        return fail(f"not set: {', '.join(missing)}", "Set them, then run `phone-agent doctor --fix`.")
    try:
        number = await find_number(ctx)
    except httpx.HTTPStatusError as exc:
        return fail(http_problem("Twilio", exc.response), "Fix the twilio.account check first.")
    if number is None:
        return fail(
            f"{settings.twilio_phone_number} is not a number of this Twilio account",
            "Set TWILIO_PHONE_NUMBER to a number listed under Phone Numbers → Active numbers.",
        )
    expected = webhook_url(settings)
    actual, method = number.get("voice_url") or "", (number.get("voice_method") or "POST").upper()
    if number.get("voice_application_sid"):
        return fail(
            f"{settings.twilio_phone_number} routes calls to TwiML app {number['voice_application_sid']}",
            "Run `phone-agent doctor --fix` to point the number at this agent instead.",
        )
    if actual != expected or method != "POST":
        return fail(
            f"voice webhook is {method} {actual or '(empty)'}, expected POST {expected}",
            "Run `phone-agent doctor --fix`, or set 'A call comes in' to this URL in the Twilio console.",
        )
    return ok(f"{settings.twilio_phone_number} → POST {expected}")


async def set_voice_webhook(ctx: DoctorContext) -> str:
    """Point the number's voice webhook (and status callback) at this agent; returns what was done."""
    settings = ctx.settings
    auth = _twilio_auth(settings)
    expected = webhook_url(settings)
    if auth is None or expected is None or not settings.twilio_phone_number:
        return "cannot fix the webhook: set PUBLIC_URL, TWILIO_PHONE_NUMBER and the Twilio credentials"
    number = await find_number(ctx)
    if number is None:
        return f"cannot fix the webhook: {settings.twilio_phone_number} is not on this account"
    data = {
        "VoiceUrl": expected,
        "VoiceMethod": "POST",
        "StatusCallback": f"{settings.public_url}/phone/status",
        "StatusCallbackMethod": "POST",
    }
    if number.get("voice_application_sid"):
        data["VoiceApplicationSid"] = ""  # a TwiML app overrides VoiceUrl; detach it
    response = await ctx.http.post(
        _twilio_api(settings) + f"/IncomingPhoneNumbers/{number['sid']}.json", data=data, auth=auth
    )
    if response.status_code != 200:
        return "could not set the webhook: " + http_problem("Twilio", response)
    return f"set {settings.twilio_phone_number} voice webhook to POST {expected}"


# --- OpenAI ---------------------------------------------------------------------------------------
async def _list_models(ctx: DoctorContext, base_url: str) -> httpx.Response:
    key = ctx.settings.secret("openai_api_key")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await ctx.http.get(f"{base_url.rstrip('/')}/models", headers=headers)


def _model_ids(response: httpx.Response) -> set[str]:
    return {str(m.get("id")) for m in response.json().get("data", []) if isinstance(m, dict)}


@check("openai.key", "openai", on_timeout="The OpenAI API did not answer; check outbound HTTPS.")
async def openai_key(ctx: DoctorContext) -> Outcome:
    """The OpenAI key is accepted (models list)."""
    if not ctx.settings.openai_api_key:
        return fail("OPENAI_API_KEY is not set", "Create a key at platform.openai.com/api-keys and set it.")
    response = await _list_models(ctx, ctx.settings.openai_base_url)
    if response.status_code == 401:
        return fail(
            http_problem("OpenAI", response), "The key is wrong or revoked: set a valid OPENAI_API_KEY."
        )
    if response.status_code != 200:
        return fail(http_problem("OpenAI", response), "Check the key's project permissions and billing.")
    return ok(f"key accepted by {ctx.settings.openai_base_url} ({len(_model_ids(response))} models)")


@check("openai.model", "openai", on_timeout="The LLM endpoint did not answer; check llm_base_url.")
async def openai_model(ctx: DoctorContext) -> Outcome:
    """The configured chat model (and OpenAI STT model) exist for this key."""
    s = ctx.settings
    if not s.openai_api_key and s.llm_provider == "openai":
        return fail("OPENAI_API_KEY is not set, so no model can be used", "Set OPENAI_API_KEY.")
    wanted = {s.llm_base_url: [s.llm_model]}
    if s.stt_provider == "openai" and s.voice_stack == "cloud":
        wanted.setdefault(s.openai_base_url, []).append(s.stt_model)
    missing: list[str] = []
    for base_url, models in wanted.items():
        response = await _list_models(ctx, base_url)
        if response.status_code != 200:
            return fail(http_problem(base_url, response), "Fix the openai.key check first.")
        available = _model_ids(response)
        missing += [m for m in models if m not in available]
    if missing:
        return fail(
            f"model(s) not available to this key: {', '.join(missing)}",
            "Set llm_model / stt_model to a model your account lists (`GET /v1/models`).",
        )
    return ok("models available: " + ", ".join(m for models in wanted.values() for m in models))


# --- ElevenLabs -----------------------------------------------------------------------------------
def _xi_headers(settings: Settings) -> dict[str, str]:
    return {"xi-api-key": settings.secret("elevenlabs_api_key") or ""}


def _elevenlabs_missing(settings: Settings) -> Outcome:
    if settings.voice_stack == "local":
        return ok("not used: voice_stack=local speaks with Piper (see local.speech)")
    if settings.tts_fallback_provider == "openai" and settings.openai_api_key:
        return warn(
            "ELEVENLABS_API_KEY is not set: calls speak with the OpenAI fallback voice",
            "Set ELEVENLABS_API_KEY (elevenlabs.io → Developers → API keys) for the natural voice.",
        )
    return fail("ELEVENLABS_API_KEY is not set and there is no fallback voice", "Set ELEVENLABS_API_KEY.")


@check("elevenlabs.key", "elevenlabs", on_timeout="ElevenLabs did not answer; check outbound HTTPS.")
async def elevenlabs_key(ctx: DoctorContext) -> Outcome:
    """The ElevenLabs key is accepted."""
    s = ctx.settings
    if not s.elevenlabs_api_key:
        return _elevenlabs_missing(s)
    response = await ctx.http.get(f"{s.elevenlabs_base_url.rstrip('/')}/v1/user", headers=_xi_headers(s))
    if response.status_code == 401 and "missing_permissions" in response.text:
        return ok("key accepted (it may not read the user; synthesis is checked below)")
    if response.status_code != 200:
        return fail(http_problem("ElevenLabs", response), "Set a valid ELEVENLABS_API_KEY.")
    tier = (response.json().get("subscription") or {}).get("tier")
    return ok(f"key accepted{f' (tier {tier})' if tier else ''}")


@check("elevenlabs.voice", "elevenlabs", on_timeout="ElevenLabs did not synthesise in time.")
async def elevenlabs_voice(ctx: DoctorContext) -> Outcome:
    """The configured voice exists: a one-word synthesis returns audio."""
    s = ctx.settings
    if not s.elevenlabs_api_key:
        return _elevenlabs_missing(s)
    response = await ctx.http.post(
        f"{s.elevenlabs_base_url.rstrip('/')}/v1/text-to-speech/{s.elevenlabs_voice_id}",
        params={"output_format": "ulaw_8000"},
        json={"text": "OK.", "model_id": s.tts_model},
        headers=_xi_headers(s),
    )
    if response.status_code != 200:
        return fail(
            http_problem("ElevenLabs", response) + f" for voice {s.elevenlabs_voice_id}",
            "Set ELEVENLABS_VOICE_ID to a voice in your ElevenLabs voice library, and tts_model to a "
            "model your plan has.",
        )
    if not response.content:
        return fail(f"voice {s.elevenlabs_voice_id} returned no audio", "Try another voice id.")
    return ok(f"voice {s.elevenlabs_voice_id} speaks ({len(response.content)} bytes of ulaw_8000 audio)")
