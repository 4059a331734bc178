"""The STT ladder in a call: the primary transcription endpoint fails, the secondary (another
OpenAI-compatible endpoint) transcribes, and the caller gets their answer; an empty transcript of
real speech gets "could you say it again?", never the idle prompt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from phone_agent.voice.idle import REPEAT_PROMPT
from tests.fakes.audio import speech_wav
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.openai import FakeOpenAI
from tests.running_agent import SHORT_GREETINGS


@pytest.fixture
def second_stt() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-second-stt") as fake:
        yield fake


async def test_the_secondary_transcribes_when_the_primary_fails(
    agent_factory: Any, db_rows: Any, second_stt: FakeOpenAI
) -> None:
    env = {
        "PHONE_AGENT_STT_FALLBACK_BASE_URL": second_stt.url + "/v1",
        "PHONE_AGENT_STT_FALLBACK_API_KEY": second_stt.api_key,
        "PHONE_AGENT_STT_FALLBACK_MODEL": "whisper-1",
    }
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        agent.openai.fail_next(100, status=503, path="/audio/transcriptions")
        second_stt.transcripts.extend(["Are you open on Sundays?", "Thanks."])
        second_stt.default_transcript = ""
        agent.openai.script("No, we are closed on Sundays.", "You're welcome.")
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            for text in ("Are you open on Sundays", "Thanks"):
                turn = await caller.say_wav(speech_wav(text))
                await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
                await caller.wait_for_quiet(0.6, timeout=30)
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns[1:]] == [
        ("caller", "Are you open on Sundays?"),
        ("agent", "No, we are closed on Sundays."),
        ("caller", "Thanks."),
        ("agent", "You're welcome."),
    ]
    assert {r["model"] for r in second_stt.transcription_requests} == {"whisper-1"}
    assert second_stt.requests[0].headers["authorization"] == "Bearer sk-second-stt"
    # the primary failed once; the second utterance went straight to the secondary
    assert len(agent.openai.requests_to("/audio/transcriptions")) == 1
    assert call.end_reason == "hangup"


async def test_speech_that_transcribes_to_nothing_is_asked_again_not_idle(agent_factory: Any) -> None:
    env = {"PHONE_AGENT_IDLE_TIMEOUT_SECONDS": "1.0", "PHONE_AGENT_IDLE_PROMPT": "Still there?"}
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        agent.openai.default_transcript = ""  # the caller speaks; STT hears no words
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.3, timeout=30)
            turn = await caller.say_wav(speech_wav("Are you open on Sundays"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.3, timeout=30)
    spoken = [c.text.strip() for c in agent.elevenlabs.contexts.values()]
    assert spoken[1] == REPEAT_PROMPT, spoken
    assert "Still there?" not in spoken  # the caller spoke: that was no silence


async def test_deepgram_is_the_fallback_stt_when_chosen(
    agent_factory: Any, db_rows: Any, fake_deepgram: FakeDeepgram
) -> None:
    env = {
        "PHONE_AGENT_STT_FALLBACK_PROVIDER": "deepgram",
        "PHONE_AGENT_STT_FALLBACK_MODEL": "nova-3",
        "DEEPGRAM_API_KEY": fake_deepgram.api_key,
        "PHONE_AGENT_DEEPGRAM_BASE_URL": fake_deepgram.ws_url,
    }
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        agent.openai.fail_next(100, status=401, path="/audio/transcriptions")
        fake_deepgram.transcripts.append("Are you open on Sundays?")
        agent.openai.script("No, we are closed on Sundays.")
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("Are you open on Sundays"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
    [request] = fake_deepgram.prerecorded
    assert request["query"]["model"] == "nova-3" and request["audio_bytes"] > 8000
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns[1:]] == [
        ("caller", "Are you open on Sundays?"),
        ("agent", "No, we are closed on Sundays."),
    ]
