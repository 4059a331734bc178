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
        "instructions",
        "greeting",
        "business_hours",
        "handoff_number",
        "fallback_action",
    ),
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
    ),
}
EDITABLE = {name for names in SECTIONS.values() for name in names}
LABELS = {
    "elevenlabs_voice_id": "Voice id",
    "tts_model": "Model",
    "tts_stability": "Stability",
    "tts_similarity": "Similarity / clarity",
    "tts_style": "Style",
    "tts_speed": "Speed",
    "agent_name": "Agent name",
    "business_name": "Business name",
    "instructions": "Instructions",
    "greeting": "Greeting",
    "business_hours": "Business hours",
    "handoff_number": "Handoff number",
    "fallback_action": "When the agent can't talk",
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
}
TEXTAREAS = {"instructions", "greeting", "transfer_destinations", "max_call_wrap_up"}


@dataclass(frozen=True)
class FieldView:
    """One form field as the template draws it."""

    name: str
    label: str
    value: Any
    source: str
    description: str
    kind: Literal["text", "textarea", "range", "select", "password"]
    choices: tuple[str, ...] = ()
    placeholder: str = ""  # a secret's masked value: the field itself stays empty
    minimum: float | None = None
    maximum: float | None = None


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
        choices: tuple[str, ...] = ()
        low, high = None, None
        placeholder = ""
        if is_secret(name):  # never sent to the browser, not even masked, as a value
            kind, placeholder = "password", f"set ({value})" if value else "not set"
            value = ""
        elif annotation is bool:
            kind, choices, value = "select", ("true", "false"), str(value).lower()
        elif get_origin(annotation) is Literal:
            kind, choices = "select", tuple(str(c) for c in get_args(annotation))
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
                description=info.description or "",
                kind=kind,
                choices=choices,
                minimum=low,
                maximum=high,
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
