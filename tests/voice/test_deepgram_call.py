"""stt_provider=deepgram: the call's speech is transcribed by Deepgram's streaming API; when Deepgram
cannot work (a refused key) the call is handed to the fallback action."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import speech_wav
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env


async def test_deepgram_transcribes_the_caller(
    agent_factory: Any, db_rows: Any, fake_deepgram: FakeDeepgram
) -> None:
    env = {"PHONE_AGENT_STT_PROVIDER": "deepgram", "DEEPGRAM_API_KEY": fake_deepgram.api_key}
    env["PHONE_AGENT_DEEPGRAM_BASE_URL"] = fake_deepgram.ws_url
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        fake_deepgram.transcripts.append("How much does it cost?")
        agent.openai.script("Ninety dollars a person.")
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("How much does it cost"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.3, timeout=30)
    assert fake_deepgram.sessions and agent.openai.transcription_requests == []
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns[1:]] == [
        ("caller", "How much does it cost?"),
        ("agent", "Ninety dollars a person."),
    ]


async def test_deepgram_refusing_the_key_hands_the_call_over(
    agent_factory: Any, db_rows: Any, fake_deepgram: FakeDeepgram, fake_twilio: FakeTwilioREST
) -> None:
    env = {"PHONE_AGENT_STT_PROVIDER": "deepgram", "DEEPGRAM_API_KEY": "wrong-key"}
    env |= {"PHONE_AGENT_DEEPGRAM_BASE_URL": fake_deepgram.ws_url, "PHONE_AGENT_FALLBACK_ACTION": "voicemail"}
    env |= twilio_env(fake_twilio) | {"PUBLIC_URL": "https://agent.example.com"}
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    [update] = [u["params"] for u in fake_twilio.call_updates if u["sid"] == caller.call_sid]
    assert "<Record" in update["Twiml"]
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "stt_failed → voicemail"
