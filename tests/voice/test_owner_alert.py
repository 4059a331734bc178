"""Done-when of issue 12: a wrong OpenAI key shows as a failure on the admin page within one call,
and the owner gets one alert (SMS through the Twilio fake, e-mail into the SMTP server), not one per
call. Each call still ends where the fallback action sends it (``stt_failed → voicemail``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import select

from phone_agent.storage.tables import Call, ProviderErrorRow
from tests.admin.conftest import PASSWORD, log_in
from tests.fakes.audio import speech_wav
from tests.fakes.smtp import FakeSMTP
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, Agent, twilio_env

OWNER_SMS = "+15550001111"
STATUS_TOKEN = "status-token-for-the-alert-test"
WRONG_KEY = "sk-wrong-key-0123456789abcdef"


def alert_env(twilio: FakeTwilioREST, smtp: FakeSMTP) -> dict[str, str]:
    return {
        **SHORT_GREETINGS,
        **twilio_env(twilio),
        "OPENAI_API_KEY": WRONG_KEY,  # STT (both rungs) and the LLM refuse it with 401
        "TWILIO_PHONE_NUMBER": "+15550100100",
        "PUBLIC_URL": "https://agent.example.com",
        "PHONE_AGENT_FALLBACK_ACTION": "voicemail",
        "PHONE_AGENT_OWNER_SMS_NUMBER": OWNER_SMS,
        "PHONE_AGENT_OWNER_EMAIL": "owner@example.com",
        "PHONE_AGENT_SMTP_HOST": smtp.host,
        "PHONE_AGENT_SMTP_PORT": str(smtp.port),
        "PHONE_AGENT_SMTP_USERNAME": "owner-bot",
        "PHONE_AGENT_SMTP_PASSWORD": "smtp-secret-pw",
        "PHONE_AGENT_SMTP_STARTTLS": "false",
        "PHONE_AGENT_ADMIN_STATUS_TOKEN": STATUS_TOKEN,
        "ADMIN_PASSWORD": PASSWORD,
    }


async def one_call(agent: Agent, twilio: FakeTwilioREST) -> str:
    """Greeting, one question, then the agent hands the call to voicemail; returns the call SID."""
    caller = agent.caller(twilio_rest=twilio)
    async with caller:
        await caller.wait_for_agent_audio(timeout=15)
        await caller.wait_for_quiet(0.6, timeout=20)
        await caller.say_wav(speech_wav("Are you open on Sundays"))
        await caller.wait_for_close(timeout=30)
    assert caller.redirects and "<Record" in str(caller.redirects[-1].get("Twiml"))
    return caller.call_sid


def owner_texts(twilio: FakeTwilioREST) -> list[str]:
    return [m["body"] for m in twilio.messages if m["to"] == OWNER_SMS]


async def wait_for(predicate: Any, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_wrong_key_shows_on_the_admin_page_and_alerts_the_owner_once(
    agent_factory: Any, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP, db_rows: Any
) -> None:
    with agent_factory(**alert_env(fake_twilio, fake_smtp)) as agent:
        base = agent.ws_url.replace("ws://", "http://")
        first = await one_call(agent, fake_twilio)

        # Within one call: /admin-status and the System section show OpenAI failing, by kind.
        async with httpx.AsyncClient(base_url=base) as http:
            status = await http.get("/admin-status", headers={"Authorization": f"Bearer {STATUS_TOKEN}"})
        openai = status.json()["health"]["providers"]["openai"]
        assert openai["ok"] is False and openai["last_kind"] == "auth", openai
        assert openai["errors_last_hour"] >= 1
        assert openai["kinds_last_hour"] == {"auth": openai["errors_last_hour"]}
        assert WRONG_KEY not in status.text and "smtp-secret-pw" not in status.text
        page = await asyncio.to_thread(admin_page, base)
        row = page.split('data-provider="openai"', 1)[1].split("</tr>", 1)[0]
        assert "ERROR" in row and "auth" in row and "in the last hour" in row
        assert WRONG_KEY not in page

        await wait_for(lambda: len(owner_texts(fake_twilio)) == 1 and len(fake_smtp.emails) == 1)
        # More failing calls, two at once: still the one alert.
        others = await asyncio.gather(one_call(agent, fake_twilio), one_call(agent, fake_twilio))
        await asyncio.sleep(1.0)  # an alert would be on its way by now

    (sms,) = owner_texts(fake_twilio)
    assert sms.startswith("Bella Cucina: OpenAI refused the key"), sms
    (email,) = fake_smtp.emails
    assert email.subject.startswith("Bella Cucina: OpenAI refused the key") and "admin page" in email.text
    calls = {c.call_sid: c for c in await db_rows(select(Call))}
    assert {calls[sid].end_reason for sid in (first, *others)} == {"stt_failed → voicemail"}
    errors = await db_rows(select(ProviderErrorRow).where(ProviderErrorRow.provider == "openai"))
    assert {e.call_sid for e in errors} == {first, *others} and {e.kind for e in errors} == {"auth"}


def admin_page(base: str) -> str:
    with httpx.Client(base_url=base) as client:
        log_in(client)  # type: ignore[arg-type]
        return client.get("/admin").text
