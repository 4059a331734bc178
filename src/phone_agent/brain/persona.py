"""The agent's persona: greeting and system instructions, from Settings."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from phone_agent.config import Settings


class _Blank(dict[str, str]):
    """Format mapping that leaves unknown {placeholders} empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


def greeting_for(settings: Settings, caller_name: str | None = None) -> str:
    """The first sentence of a call: personalised when the caller is known by name, opened by the
    recording consent when calls are recorded."""
    template = settings.returning_greeting if caller_name else settings.greeting
    values = _Blank(
        business_name=settings.business_name, agent_name=settings.agent_name, caller_name=caller_name or ""
    )
    return with_consent(settings, template.format_map(values))


def with_consent(settings: Settings, greeting: str) -> str:
    """The greeting opened by ``recording_consent`` when calls are recorded (before anything else)."""
    if settings.recording_enabled and settings.recording_consent.strip():
        greeting = f"{settings.recording_consent.strip()} {greeting}"
    return " ".join(greeting.split())


def persona_prompt(settings: Settings) -> str:
    """The part of the system prompt that never gets dropped: who the agent is and how it behaves."""
    lines = [
        f"You are {settings.agent_name}, the phone receptionist of {settings.business_name}.",
        settings.instructions.strip(),
        f"Business hours: {settings.business_hours} ({settings.timezone}).",
    ]
    if departments := ", ".join(settings.destinations()):
        lines.append(f"Departments you can transfer callers to (transfer_call destination): {departments}.")
    if settings.business_facts.strip():
        lines.append("Business facts:\n" + settings.business_facts.strip())
    return "\n".join(line for line in lines if line)


def clock_line(settings: Settings, now: datetime) -> str:
    """The current local date and time, so the model can resolve "tomorrow at ten"."""
    local = now.astimezone(ZoneInfo(settings.timezone))
    return f"Now it is {local:%A %d %B %Y, %H:%M} ({settings.timezone})."


def outbound_greeting_for(settings: Settings, purpose: str, callee_name: str | None = None) -> str:
    """The first sentence of an outbound call a person answered (after the recording consent)."""
    return with_consent(settings, _outbound_text(settings.outbound_greeting, settings, purpose, callee_name))


def voicemail_for(settings: Settings, purpose: str, callee_name: str | None = None) -> str:
    """The message left on an answering machine after the beep."""
    return _outbound_text(settings.voicemail_message, settings, purpose, callee_name)


def outbound_brief(purpose: str, callee_name: str | None = None) -> str:
    """Instructions for the LLM on a call the agent placed: who called whom, and why."""
    who = f" to {callee_name}" if callee_name else ""
    return (
        f"This is an outbound call: you called{who}; they did not call you. Purpose of the call: "
        f"{purpose}. You have already greeted them and said why you are calling. Stay on that purpose, "
        "answer their questions, and end the call politely once it is done or if they ask you to."
    )


def _outbound_text(template: str, settings: Settings, purpose: str, callee_name: str | None) -> str:
    values = _Blank(
        business_name=settings.business_name,
        agent_name=settings.agent_name,
        purpose=purpose.strip().rstrip("."),
        callee_name=callee_name or "",
        callback_number=_spoken_number(settings.twilio_phone_number or ""),
    )
    return " ".join(template.format_map(values).split())


def _spoken_number(number: str) -> str:
    """Digits grouped so a voice reads them one by one: '+15550100200' → '5 5 5, 0 1 0, 0 2 0 0'."""
    digits = number.removeprefix("+1") if number.startswith("+1") and len(number) == 12 else number
    digits = digits.lstrip("+")
    if len(digits) == 10:
        groups = [digits[:3], digits[3:6], digits[6:]]
    else:
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return ", ".join(" ".join(group) for group in groups if group)
