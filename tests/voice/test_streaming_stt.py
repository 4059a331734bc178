"""Streaming STT in a call: the caller's speech goes to OpenAI realtime transcription while they
speak and is committed at their pause; when the session is refused, dropped or silent, the
segmented STT ladder transcribes instead and the caller still gets their answer."""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import speech_wav
from tests.fakes.openai_realtime_stt import FakeOpenAIRealtimeSTT
from tests.running_agent import SHORT_GREETINGS

UTTERANCES = ("I would like to book a table", "How much does it cost")
HEARD = ["I would like to book a table.", "How much does it cost?"]
REPLIES = ["Of course. For what day and time?", "Ninety dollars a person."]


def streaming_env(url: str) -> dict[str, str]:
    return SHORT_GREETINGS | {"PHONE_AGENT_REALTIME_BASE_URL": url, "PHONE_AGENT_STT_MODE": "streaming"}


async def talk(agent: Any) -> Any:
    """Greeting, then each of UTTERANCES with its reply; returns the caller."""
    async with agent.caller() as caller:
        await caller.wait_for_agent_audio(timeout=20)
        await caller.wait_for_quiet(0.6, timeout=30)
        for text in UTTERANCES:
            turn = await caller.say_wav(speech_wav(text))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
    return caller


async def stored_turns(db_rows: Any, call_sid: str) -> list[tuple[str, str]]:
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    return [(t.role, t.text) for t in turns[1:]]


EXPECTED = [("caller", HEARD[0]), ("agent", REPLIES[0]), ("caller", HEARD[1]), ("agent", REPLIES[1])]


async def test_speech_is_streamed_while_spoken_and_committed_at_the_pause(
    agent_factory: Any, db_rows: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT
) -> None:
    stt = fake_openai_realtime_stt
    stt.transcripts.extend(HEARD)
    stt.default_transcript = ""
    with agent_factory(**streaming_env(stt.ws_url + "/v1/realtime")) as agent:
        agent.openai.script(*REPLIES)
        caller = await talk(agent)
    assert await stored_turns(db_rows, caller.call_sid) == EXPECTED
    assert agent.openai.transcription_requests == []  # nothing went the segmented way
    [session] = stt.sessions
    assert session["headers"]["authorization"] == "Bearer " + agent.openai.api_key
    audio_in = session["session"]["audio"]["input"]
    assert audio_in["format"]["type"] == "audio/pcmu" and audio_in["turn_detection"] is None
    assert audio_in["transcription"]["model"] == "gpt-4o-transcribe"
    types = [e["type"] for e in session["events"]]
    assert types[0] == "session.update" and types.count("input_audio_buffer.commit") >= 2
    # each commit follows the speech it holds: audio was sent before it, in small messages
    assert types.index("input_audio_buffer.append") < types.index("input_audio_buffer.commit")
    assert [c.transcript for c in stt.commits if c.transcript] == HEARD
    # only speech goes out (mu-law: one byte a sample): far less than the call's whole uplink
    call_seconds = (caller.closed_at or 0) - (caller.started_at or 0)
    assert 0 < session["audio_bytes"] / 8000 < 0.6 * call_seconds


async def test_a_refused_key_falls_back_to_the_ladder(
    agent_factory: Any, db_rows: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT
) -> None:
    fake_openai_realtime_stt.api_key = "sk-some-other-key"  # our key gets 401 at the handshake
    with agent_factory(**streaming_env(fake_openai_realtime_stt.ws_url + "/v1/realtime")) as agent:
        agent.script_speech(HEARD, REPLIES)
        caller = await talk(agent)
    assert await stored_turns(db_rows, caller.call_sid) == EXPECTED
    assert fake_openai_realtime_stt.sessions == [] and len(agent.openai.transcription_requests) == 2


async def test_a_refused_connection_falls_back_to_the_ladder(agent_factory: Any, db_rows: Any) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with agent_factory(**streaming_env(f"ws://127.0.0.1:{port}/v1/realtime")) as agent:
        agent.script_speech(HEARD, REPLIES)
        caller = await talk(agent)
    assert await stored_turns(db_rows, caller.call_sid) == EXPECTED
    assert len(agent.openai.transcription_requests) == 2


async def test_a_socket_dropped_at_a_commit_hands_that_utterance_to_the_ladder(
    agent_factory: Any, db_rows: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT
) -> None:
    stt = fake_openai_realtime_stt
    stt.drop_at_commit(1)  # the first utterance's commit closes the socket (1011)
    stt.default_transcript = ""
    with agent_factory(**streaming_env(stt.ws_url + "/v1/realtime")) as agent:
        agent.script_speech(HEARD, REPLIES)
        caller = await talk(agent)
    assert await stored_turns(db_rows, caller.call_sid) == EXPECTED
    assert len(stt.sessions) == 1 and stt.commits == []  # dropped before it committed anything
    assert len(agent.openai.transcription_requests) == 2  # that utterance and the next, by the ladder


async def test_a_commit_never_transcribed_goes_to_the_ladder(
    agent_factory: Any, db_rows: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT
) -> None:
    stt = fake_openai_realtime_stt
    stt.hang_at_commit(1)  # committed, never transcribed
    stt.default_transcript = ""
    with agent_factory(**streaming_env(stt.ws_url + "/v1/realtime")) as agent:
        agent.script_speech(HEARD, REPLIES)
        caller = await talk(agent)
    assert await stored_turns(db_rows, caller.call_sid) == EXPECTED
    assert len(stt.commits) == 1 and stt.commits[0].transcript is None
    assert len(agent.openai.transcription_requests) == 2
