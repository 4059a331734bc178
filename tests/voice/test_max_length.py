"""Max call length: the wrap-up sentence is spoken, then the fallback action (a voicemail here) or a
hang-up; the call's row says why it ended."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call
from tests.fakes.audio import MS_PER_CHAR
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env

WRAP_UP = "Time is up, goodbye."
LIMIT = {
    "PHONE_AGENT_MAX_CALL_SECONDS": "4",
    "PHONE_AGENT_MAX_CALL_WRAP_UP": WRAP_UP,
    "PUBLIC_URL": "https://agent.example.com",
    "PHONE_AGENT_FALLBACK_ACTION": "voicemail",
}


async def test_wrap_up_then_the_fallback_action(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | LIMIT) as agent:
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            before = len(caller.played_audio)
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    assert caller.closed_at is not None and caller.started_at is not None
    assert caller.closed_at - caller.started_at >= 4
    assert (len(caller.played_audio) - before) / 8 >= 0.8 * MS_PER_CHAR * len(WRAP_UP)  # it was heard
    [update] = [u for u in fake_twilio.call_updates if "Twiml" in u["params"]]
    assert ET.fromstring(update["params"]["Twiml"]).find("./Record") is not None
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "max_length → voicemail"


async def test_wrap_up_then_hang_up(agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST) -> None:
    env = SHORT_GREETINGS | twilio_env(fake_twilio) | LIMIT | {"PHONE_AGENT_MAX_CALL_ACTION": "hang_up"}
    with agent_factory(**env) as agent:
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "agent_hangup"
    assert not [u for u in fake_twilio.call_updates if "Twiml" in u["params"]]
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "max_length"


async def test_realtime_mode_wraps_up_too(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST, fake_openai_realtime: Any
) -> None:
    from tests.voice.test_realtime_call import GREETING, realtime_env

    fake_openai_realtime.script(GREETING, WRAP_UP)
    env = realtime_env(fake_openai_realtime) | twilio_env(fake_twilio) | LIMIT
    with agent_factory(**env) as agent:
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    items = fake_openai_realtime.sessions[0]["items"]
    assert any(WRAP_UP in str(item["content"]) for item in items)  # the model was asked to say it
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "max_length → voicemail"
