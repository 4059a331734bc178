"""A silent caller: the agent checks in, then says goodbye and hangs up (via Twilio REST) only after
the goodbye has played — never dead air, never a cut-off goodbye."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import MS_PER_CHAR
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS

PROMPT = "Still there?"
GOODBYE = "Goodbye for now."


async def test_silent_caller_is_prompted_then_hung_up(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = {
        "PHONE_AGENT_IDLE_TIMEOUT_SECONDS": "1.5",
        "PHONE_AGENT_IDLE_PROMPT": PROMPT,
        "PHONE_AGENT_IDLE_GOODBYE": GOODBYE,
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        "PHONE_AGENT_TWILIO_API_BASE_URL": fake_twilio.url,
    }
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.2, timeout=30)
            greeting_played = len(caller.played_audio)
            await caller.wait_for_close(timeout=30)
    spoken = [c.text.strip() for c in agent.elevenlabs.contexts.values()]
    assert spoken[-2:] == [PROMPT, GOODBYE]
    assert caller.ended_by == "agent_hangup"
    # everything after the greeting was played in full before the hang-up
    after_greeting_ms = (len(caller.played_audio) - greeting_played) / 8
    assert after_greeting_ms >= 0.9 * MS_PER_CHAR * len(PROMPT + GOODBYE)
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "idle" and call.ended_at is not None
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [t.text for t in turns[-2:]] == [PROMPT, GOODBYE]
