"""ElevenLabs failing (HTTP 500 at connect, or its socket dropped mid-call) → the caller still hears
every reply, in the fallback voice (OpenAI TTS); both voices failing → Twilio's own <Say>."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from phone_agent.voice.rescue import APOLOGY
from tests.fakes.audio import MS_PER_CHAR, is_silent, speech_wav
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env

GREETING = "Hello, thanks for calling Bella Cucina. This is Ava. How can I help you today?"


@pytest.mark.parametrize("fault", ["http-500", "dropped-socket"])
async def test_reply_is_heard_in_the_fallback_voice(agent_factory: Any, db_rows: Any, fault: str) -> None:
    with agent_factory(PHONE_AGENT_GREETING=GREETING) as agent:
        if fault == "http-500":
            agent.elevenlabs.fail_next(20, status=500)  # every (re)connect attempt fails
        else:
            agent.elevenlabs.drop_next(1)  # the call's socket is cut after its first audio message
        agent.script_speech(["Are you open on Sundays?"], ["No, we are closed on Sundays."])
        async with agent.caller() as caller:
            greeting_at = await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            greeting_ms = (
                sum(
                    len(a.audio) for a in caller.agent_audio if a.at >= greeting_at and not is_silent(a.audio)
                )
                / 8
            )
            turn = await caller.say_wav(speech_wav("Are you open on Sundays"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
    assert turn.speech_ended is not None
    print(f"greeting audio {greeting_ms} ms; speech requests {agent.openai.speech_requests}")
    assert greeting_ms >= 0.75 * MS_PER_CHAR * len(GREETING)  # all of it was heard, whoever spoke it
    reply_audio = [a for a in caller.agent_audio if a.at > turn.speech_ended and not is_silent(a.audio)]
    assert sum(len(a.audio) for a in reply_audio) / 8 > 1500  # 29 characters of speech
    spoken = [r["input"] for r in agent.openai.speech_requests]
    assert any("closed on Sundays" in text for text in spoken), spoken
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert turns[-1].text == "No, we are closed on Sundays."


async def test_both_voices_failing_leave_it_to_twilios_say(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = twilio_env(fake_twilio) | {
        "PHONE_AGENT_FALLBACK_ACTION": "voicemail",
        "PUBLIC_URL": "https://agent.example.com",
    }
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        agent.elevenlabs.fail_next(100, status=401)
        agent.openai.fail_next(100, status=500, path="/audio/speech")
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_close(timeout=20)
    assert caller.ended_by == "redirect"
    [update] = [r.form for r in fake_twilio.requests if caller.call_sid in r.path and r.method == "POST"]
    assert f"<Say>{APOLOGY}</Say>" in update["Twiml"] and "<Record" in update["Twiml"]
    assert update["Twiml"].index("<Say>") < update["Twiml"].index("<Record")
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "tts_failed → voicemail"
