"""What the outbound-call tests share: an agent that may call at any hour, placing a call over the API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env

API_KEY = "outbound-test-key"
AGENT_NUMBER = "+15005550006"
CALLEE = "+15551230077"
PURPOSE = "your table on Friday"
GREETING = "Hi, Ava here about your table on Friday."
VOICEMAIL = "Ava about your table on Friday. Call us."


def outbound_env(twilio: FakeTwilioREST, **extra: str) -> dict[str, str]:
    """An agent that may call at any hour, with short outbound lines (the fake TTS: 70 ms a char)."""
    return (
        SHORT_GREETINGS
        | twilio_env(twilio)
        | {
            "TWILIO_PHONE_NUMBER": AGENT_NUMBER,
            "PHONE_AGENT_API_KEY": API_KEY,
            "PHONE_AGENT_CALLING_HOURS": "Mon-Sun 00:00-24:00",
            "PHONE_AGENT_OUTBOUND_GREETING": "Hi, {agent_name} here about {purpose}.",
            "PHONE_AGENT_VOICEMAIL_MESSAGE": "{agent_name} about {purpose}. Call us.",
        }
        | extra
    )


async def place_call(agent: Any, to: str = CALLEE, purpose: str = PURPOSE) -> httpx.Response:
    http = agent.ws_url.replace("ws://", "http://")
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(
            f"{http}/v1/calls",
            json={"to": to, "purpose": purpose},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )


async def wait_for(predicate: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
