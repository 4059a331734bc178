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
    greeting = template.format_map(values)
    if settings.recording_enabled and settings.recording_consent.strip():
        greeting = f"{settings.recording_consent.strip()} {greeting}"  # consent before anything else
    return " ".join(greeting.split())


def persona_prompt(settings: Settings) -> str:
    """The part of the system prompt that never gets dropped: who the agent is and how it behaves."""
    lines = [
        f"You are {settings.agent_name}, the phone receptionist of {settings.business_name}.",
        settings.instructions.strip(),
        f"Business hours: {settings.business_hours} ({settings.timezone}).",
    ]
    if settings.business_facts.strip():
        lines.append("Business facts:\n" + settings.business_facts.strip())
    return "\n".join(line for line in lines if line)


def clock_line(settings: Settings, now: datetime) -> str:
    """The current local date and time, so the model can resolve "tomorrow at ten"."""
    local = now.astimezone(ZoneInfo(settings.timezone))
    return f"Now it is {local:%A %d %B %Y, %H:%M} ({settings.timezone})."
