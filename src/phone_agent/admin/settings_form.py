"""The settings the admin page edits, grouped by section, and how a submitted form is saved.

A save is validated by the same Settings rules as every other layer (nothing is stored when any
value is bad), stored as admin overrides with an audit entry per changed value (secrets masked),
and made current with ``runtime.apply_overrides`` so the next call gets it without a restart.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from phone_agent.config import Settings, is_secret, shown_value
from phone_agent.errors import ConfigError
from phone_agent.ops.control import broadcast_config_change
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.overrides import clear_override, save_overrides

SECTIONS: dict[str, tuple[str, ...]] = {
    "voice": (
        "elevenlabs_voice_id",
        "tts_model",
        "tts_stability",
        "tts_similarity",
        "tts_style",
        "tts_speed",
    ),
    "personality": (
        "agent_name",
        "business_name",
        "greeting",
        "returning_greeting",
        "instructions",
        "business_facts",
        "business_hours",
        "timezone",
        "handoff_number",
        "fallback_action",
    ),
    "calls": ("recording_enabled", "recording_consent", "idle_prompt", "idle_goodbye"),
    "llm": ("llm_provider", "llm_model", "llm_base_url"),
    # provider credentials (System → Providers, and the setup checklist); each form has "Test connection"
    "openai": ("openai_api_key", "openai_base_url"),
    "elevenlabs": ("elevenlabs_api_key", "elevenlabs_base_url"),
    "deepgram": ("deepgram_api_key", "deepgram_base_url"),
    "twilio": ("twilio_account_sid", "twilio_auth_token", "twilio_api_base_url"),
    "routing": (
        "transfer_destinations",
        "closed_days",
        "max_call_seconds",
        "max_call_wrap_up",
        "max_call_action",
    ),
    "notifications": (
        "owner_sms_number",
        "owner_email",
        "notify_channels",
        "notify_events",
        "notify_max_per_hour",
        "smtp_host",
        "smtp_port",
        "smtp_username",
        "smtp_password",
        "smtp_from",
        "smtp_starttls",
        "digest_hour",
        "text_caller_after_missed_call",
        "missed_call_text",
    ),
}
EDITABLE = {name for names in SECTIONS.values() for name in names}
# What the owner reads: labels and help in their words, not the settings' names and descriptions.
LABELS = {
    "elevenlabs_voice_id": "Voice",
    "tts_model": "Voice model",
    "tts_stability": "Steadiness",
    "tts_similarity": "Likeness to the voice",
    "tts_style": "Expressiveness",
    "tts_speed": "Speaking speed",
    "agent_name": "Agent's name",
    "business_name": "Business name",
    "greeting": "Greeting for new callers",
    "returning_greeting": "Greeting for callers it knows",
    "instructions": "How the agent should behave",
    "business_facts": "Facts about your business",
    "business_hours": "Opening hours",
    "timezone": "Time zone",
    "handoff_number": "Put callers through to",
    "fallback_action": "When the agent can't talk",
    "recording_enabled": "Record calls",
    "recording_consent": "Recording notice",
    "idle_prompt": "When the caller goes quiet",
    "idle_goodbye": "Goodbye after a long silence",
    "llm_provider": "Provider",
    "llm_model": "Model",
    "llm_base_url": "Base URL",
    "openai_api_key": "OpenAI API key",
    "openai_base_url": "OpenAI base URL",
    "elevenlabs_api_key": "ElevenLabs API key",
    "elevenlabs_base_url": "ElevenLabs base URL",
    "deepgram_api_key": "Deepgram API key",
    "deepgram_base_url": "Deepgram base URL",
    "twilio_account_sid": "Twilio Account SID",
    "twilio_auth_token": "Twilio auth token",
    "twilio_api_base_url": "Twilio REST API base URL",
    "transfer_destinations": "Transfer destinations",
    "closed_days": "Closed days (holidays)",
    "max_call_seconds": "Max call length (seconds)",
    "max_call_wrap_up": "Wrap-up sentence",
    "max_call_action": "At max call length",
    "owner_sms_number": "Owner's mobile (SMS)",
    "owner_email": "Owner's e-mail",
    "notify_channels": "Channels",
    "notify_events": "Events",
    "notify_max_per_hour": "Most per hour (each kind)",
    "smtp_host": "SMTP server",
    "smtp_port": "SMTP port",
    "smtp_username": "SMTP user",
    "smtp_password": "SMTP password",
    "smtp_from": "Sender address",
    "smtp_starttls": "STARTTLS",
    "digest_hour": "Daily digest at (hour, 0-23)",
    "text_caller_after_missed_call": "Text callers whose call was missed",
    "missed_call_text": "Text to a missed caller",
}
HELP = {
    "elevenlabs_voice_id": "Pick a voice from the list (ElevenLabs voices), then press Play sample.",
    "tts_model": "The ElevenLabs model that speaks; the flash models answer fastest.",
    "tts_stability": "Higher is calmer and more even; lower is livelier.",
    "tts_similarity": "How closely the agent sticks to the voice's original sound.",
    "tts_style": "Adds emotion; 0 is plain and fastest.",
    "tts_speed": "1.0 is normal; 0.9 a little slower, 1.1 a little faster.",
    "greeting": "The first thing a caller hears. {business_name} and {agent_name} are filled in.",
    "returning_greeting": "Said instead when the agent knows the caller's name ({caller_name}).",
    "instructions": "In plain words: tone, what to ask, what never to promise.",
    "business_facts": "Prices, address, parking, policies: anything the agent may always tell callers.",
    "business_hours": "e.g. Mon-Fri 09:00-17:00; Sat 10:00-12:00. Bookings are taken inside these hours.",
    "timezone": "Your local time zone: opening hours, bookings and every time on this page use it.",
    "handoff_number": "The phone number of the person who takes calls the agent hands over (blank: nobody).",
    "fallback_action": "If a service the agent needs is down: put the caller through, take a voicemail, "
    "or apologise and hang up (auto: put through when a number is set above, else voicemail).",
    "recording_enabled": "Twilio records every call; play them back on each call's page. "
    "Recordings are deleted with the caller's data.",
    "recording_consent": "Said before the greeting on every recorded call. Check what the law where "
    "you and your callers are requires.",
    "idle_prompt": "Said after a few seconds of silence.",
    "idle_goodbye": "Said before hanging up when the silence goes on.",
    "transfer_destinations": "Named numbers the routing rules can put callers through to, e.g. "
    "Claims=+15550100001; Sales=+15550100002.",
    "closed_days": "Days you are closed although the opening hours say open (holidays), e.g. "
    "2026-12-25, 2027-01-01. Routing rules treat them as after hours.",
    "max_call_seconds": "The longest a call with the agent may last, in seconds (0: no limit). Then the "
    "agent says the wrap-up sentence and does what is chosen below.",
    "max_call_wrap_up": "Said when a call reaches the longest length.",
    "max_call_action": "After the wrap-up sentence: do what the agent does when it can't talk (put "
    "through or voicemail), or end the call.",
    "owner_sms_number": "Your mobile: messages, voicemails and problems are texted here.",
    "owner_email": "Your e-mail address for the same (needs the SMTP server below).",
    "notify_channels": "How you are told: sms, email, or both (sms, email).",
    "notify_events": "What you are told about: message, voicemail, booking, transfer_failed, "
    "provider_failure, digest (a daily summary).",
    "smtp_port": "587 for STARTTLS (most providers), 465 for TLS.",
    "smtp_from": "The address your notification e-mails come from (blank: the SMTP user).",
}
GROUPS = {  # a heading before the first field of each group
    "agent_name": "Who answers",
    "business_facts": "Your business",
    "handoff_number": "Handing calls over",
    "recording_enabled": "Recording",
    "idle_prompt": "Silence on the line",
}
TEXTAREAS = {
    "instructions",
    "greeting",
    "returning_greeting",
    "business_facts",
    "transfer_destinations",
    "max_call_wrap_up",
}
CHOICE_LABELS = {
    "fallback_action": {
        "auto": "Automatic",
        "transfer": "Put the caller through",
        "voicemail": "Take a voicemail",
        "hang_up": "Apologise and hang up",
    },
    "llm_provider": {"openai": "OpenAI", "openai-compatible": "Another OpenAI-compatible server"},
    "bool": {"true": "On", "false": "Off"},
}
DATALISTS = {"elevenlabs_voice_id": "voice-list", "timezone": "tz-list"}


@dataclass(frozen=True)
class FieldView:
    """One form field as the template draws it."""

    name: str
    label: str
    value: Any
    source: str
    description: str
    kind: Literal["text", "textarea", "range", "select", "password"]
    choices: tuple[tuple[str, str], ...] = ()  # (value, what the owner reads)
    placeholder: str = ""  # a secret's masked value: the field itself stays empty
    minimum: float | None = None
    maximum: float | None = None
    group: str | None = None
    datalist: str | None = None


def _bounds(name: str) -> tuple[float | None, float | None]:
    low = high = None
    for meta in Settings.model_fields[name].metadata:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
    return low, high


def _is_optional(name: str) -> bool:
    annotation = Settings.model_fields[name].annotation
    return get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in get_args(annotation)


def field_views(
    settings: Settings, section: str, entered: Mapping[str, Any] | None = None
) -> list[FieldView]:
    """The fields of a section with current (or just entered) values and their sources."""
    views = []
    for name in SECTIONS[section]:
        info = Settings.model_fields[name]
        annotation = info.annotation
        value = (entered or {}).get(name, settings.shown(name))
        kind: Literal["text", "textarea", "range", "select", "password"] = "text"
        choices: tuple[tuple[str, str], ...] = ()
        low, high = None, None
        placeholder = ""
        if is_secret(name):  # never sent to the browser, not even masked, as a value
            kind, placeholder = "password", f"set ({value})" if value else "not set"
            value = ""
        elif annotation is bool:
            kind, choices, value = "select", tuple(CHOICE_LABELS["bool"].items()), str(value).lower()
        elif get_origin(annotation) is Literal:
            words = CHOICE_LABELS.get(name, {})
            kind = "select"
            choices = tuple((str(c), words.get(str(c), str(c))) for c in get_args(annotation))
        elif annotation is float:
            kind = "range"
            low, high = _bounds(name)
        elif name in TEXTAREAS:
            kind = "textarea"
        views.append(
            FieldView(
                name=name,
                label=LABELS[name],
                value="" if value is None else value,
                source=settings.source_of(name),
                description=HELP.get(name, info.description or ""),
                kind=kind,
                choices=choices,
                minimum=low,
                maximum=high,
                group=GROUPS.get(name),
                datalist=DATALISTS.get(name),
                placeholder=placeholder,
            )
        )
    return views


class FormErrors(Exception):
    """Bad values in a submitted section: {field: message}; nothing was saved."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _changes(settings: Settings, section: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """Submitted values that differ from the current ones ('' clears an optional value)."""
    changes: dict[str, Any] = {}
    for name in SECTIONS[section]:
        if name not in form:
            continue
        raw = form[name]
        value: Any = raw.strip() if isinstance(raw, str) and name not in TEXTAREAS else raw
        if value == "" and is_secret(name):
            continue  # an empty password field keeps the secret (reset forgets it)
        if value == "" and _is_optional(name):
            value = None
        current = getattr(settings, name)
        if isinstance(current, bool) and str(value).lower() == str(current).lower():
            continue
        if value is None and current is None:
            continue
        if value is not None and str(value) in (str(current), str(shown_value(name, current))):
            continue  # unchanged (a URL comes back as it was shown, with its credentials masked)
        changes[name] = value
    return changes


def _field_errors(settings: Settings, changes: dict[str, Any]) -> dict[str, str]:
    """Validate each change on its own so every bad field gets its own message."""
    errors = {}
    for name, value in changes.items():
        try:
            settings.with_overrides({name: value})  # Settings' own rules (hours, time zone, numbers...)
        except ConfigError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and cause.errors():
                err = cause.errors()[0]
                errors[name] = f"{err['msg']} (got {value!r})."
            else:
                errors[name] = str(exc)
    return errors


def _stored(settings: Settings, name: str) -> Any:
    """A validated value as the override row stores it (a secret's plain text: JSON has no SecretStr)."""
    return settings.secret(name) if is_secret(name) else getattr(settings, name)


def json_value(settings: Settings, name: str) -> Any:
    """A setting as a JSON answer shows it: secrets masked, everything else as it is."""
    return settings.shown(name) if is_secret(name) else getattr(settings, name)


async def save_section(runtime: Runtime, section: str, form: Mapping[str, Any], *, actor: str) -> list[str]:
    """Validate and store a section's changes; returns the names that changed.

    Raises:
        FormErrors: a value is invalid (nothing stored).
        KeyError: unknown section.
    """
    settings = runtime.current.settings
    changes = _changes(settings, section, form)
    if not changes:
        return []
    errors = _field_errors(settings, changes)
    if errors:
        raise FormErrors(errors)
    validated = settings.with_overrides(changes)
    typed = {name: _stored(validated, name) for name in changes}  # store 0.8, not "0.8"
    async with transaction(runtime.sessions) as session:
        await save_overrides(session, settings, typed, actor=actor)
    await runtime.apply_overrides()
    await broadcast_config_change(runtime.bus, changes)  # the other roles reload too (Redis)
    return sorted(changes)


async def reset_setting(runtime: Runtime, name: str, *, actor: str) -> None:
    """Drop an admin override so the value falls back to env / config.json / default."""
    if name not in EDITABLE:
        raise FormErrors({name: "not a setting the admin page edits"})
    async with transaction(runtime.sessions) as session:
        await clear_override(session, runtime.current.settings, name, actor=actor)
    await runtime.apply_overrides()
    await broadcast_config_change(runtime.bus, [name])
