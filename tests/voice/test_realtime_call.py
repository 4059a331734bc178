"""Realtime mode: a simulated Twilio caller talks to the agent running OpenAI speech-to-speech
(the OpenAI Realtime fake) over /media-stream."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import is_silent, speech_wav
from tests.fakes.openai_realtime import FakeOpenAIRealtime

GREETING = "Hello, thanks for calling Bella Cucina. This is Ava. How can I help you today?"


def realtime_env(fake: FakeOpenAIRealtime) -> dict[str, str]:
    return {
        "PHONE_AGENT_VOICE_MODE": "realtime",
        "PHONE_AGENT_REALTIME_BASE_URL": fake.ws_url + "/v1/realtime",
        "PHONE_AGENT_REALTIME_VOICE": "cedar",
    }


async def test_caller_hears_greeting_and_a_spoken_reply(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.audio_realtime_factor = 0.5
    fake.transcripts.append("I would like to book a table.")
    fake.script(GREETING, "Of course. For what day and time?")
    with agent_factory(**realtime_env(fake)) as agent:
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)  # the greeting
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("I would like to book a table"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
        call_sid, stream_sid = caller.call_sid, caller.stream_sid

    assert caller.protocol_errors == []
    audible = [a for a in caller.agent_audio if not is_silent(a.audio)]
    assert audible and all(a.stream_sid == stream_sid for a in caller.agent_audio)
    assert caller.marks_received and len(caller.marks_sent_back) == len(caller.marks_received)
    # what went over the realtime socket: our model, voice, persona, the greeting request, the caller's audio
    [session] = fake.sessions
    assert (
        session["model"] == "gpt-realtime" and session["headers"]["authorization"] == "Bearer sk-fake-openai"
    )
    assert "Bella Cucina" in session["session"]["instructions"]
    assert session["session"]["audio"]["output"]["voice"] == "cedar"
    assert session["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert any(GREETING in str(item["content"]) for item in session["items"])
    assert session["audio_bytes"] > 24000 * 2  # over a second of caller audio at 24 kHz
    assert [r["status"] for r in session["responses"]] == ["completed", "completed"]

    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert call.stream_sid == stream_sid and call.status == "completed" and call.ended_at is not None
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns] == [
        ("agent", GREETING),
        ("caller", "I would like to book a table."),
        ("agent", "Of course. For what day and time?"),
    ]
    assert {"stt_final", "tts_first_audio", "first_audio_sent"} <= set(turns[2].marks), turns[2].marks
