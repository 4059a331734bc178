"""Realtime mode: a simulated Twilio caller talks to the agent running OpenAI speech-to-speech
(the OpenAI Realtime fake) over /media-stream."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.memory.extraction import EXTRACTION_PROMPT
from phone_agent.memory.factory import local_store
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.tables import Call, Caller, CallTurn, Message
from phone_agent.voice.pipeline import RESUME_LINE
from tests.fakes.audio import is_silent, speech_wav
from tests.fakes.openai_realtime import FakeOpenAIRealtime, RealtimeToolCall
from tests.running_agent import SHORT_GREETINGS

GREETING = "Bella Cucina, this is Ava."  # SHORT_GREETINGS of tests/running_agent.py


def realtime_env(fake: FakeOpenAIRealtime) -> dict[str, str]:
    return SHORT_GREETINGS | {
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
    print(
        f"\nrealtime mode, fake model answering at once: greeting {caller.greeting_latency:.3f} s, "
        f"voice-to-voice {[round(t.voice_to_voice or -1, 3) for t in caller.turns]} s "
        f"(includes the model's {fake_server_vad_ms(fake)} ms end-of-speech silence)"
    )


def fake_server_vad_ms(fake: FakeOpenAIRealtime) -> int:
    return int(fake.sessions[0]["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"])


REPLY = (
    "Our tasting menu has seven courses, starting with a chilled tomato soup, then fresh pasta "
    "with black truffles, a grilled sea bass, and a lemon sorbet to finish."
)


async def test_caller_speech_during_the_reply_clears_it(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.audio_realtime_factor = 0.8  # the model speaks a little faster than the phone plays
    fake.transcripts.extend(["Tell me about the tasting menu.", "How much does it cost?"])
    fake.script(GREETING, REPLY, "It is ninety dollars.")
    with agent_factory(**realtime_env(fake)) as agent:
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            question = await caller.say_wav(speech_wav("Tell me about the tasting menu"))
            await caller.wait_for_agent_audio(timeout=20, since=question.speech_ended)
            await caller.send_silence(1.5)  # let part of the reply play
            barge = await caller.say_wav(speech_wav("How much does it cost"))
            await caller.wait_for_agent_audio(timeout=20, since=barge.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)

    assert caller.protocol_errors == []
    assert barge.speech_started is not None and barge.speech_ended is not None
    clears = [t for t in caller.clears if t >= barge.speech_started]
    assert clears and clears[0] < barge.speech_ended  # cleared while the caller was still talking
    assert not [
        a for a in caller.agent_audio if clears[0] < a.at < barge.speech_ended and not is_silent(a.audio)
    ]
    # the model stopped talking and was told how much of its answer was heard
    [session] = fake.sessions
    assert [r["status"] for r in session["responses"]] == ["completed", "cancelled", "completed"]
    truncates = [e for e in session["events"] if e["type"] == "conversation.item.truncate"]
    assert truncates and 0 < truncates[-1]["audio_end_ms"] < 70 * len(REPLY)

    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    [cut] = [t for t in turns if t.interrupted]
    assert cut.role == "agent" and cut.text and REPLY.startswith(cut.text.rstrip(" ,."))
    assert len(cut.text) < len(REPLY)
    assert [t.text for t in turns[-2:]] == ["How much does it cost?", "It is ninety dollars."]


async def test_a_dropped_realtime_socket_hands_the_call_to_pipeline_mode(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.transcripts.append("I would like to book a table.")
    fake.script(GREETING)
    fake.drop_at_response(2)  # the socket dies when the model should answer the caller
    with agent_factory(**realtime_env(fake)) as agent:
        agent.script_speech(["For tomorrow at eight."], ["Booked for tomorrow at eight."])
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("I would like to book a table"))
            resumed_at = await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
            again = await caller.say_wav(speech_wav("For tomorrow at eight"))
            await caller.wait_for_agent_audio(timeout=20, since=again.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
    assert caller.protocol_errors == [] and caller.ended_by == "caller"  # never hung up on
    assert resumed_at - (turn.speech_ended or 0) < 5  # no dead air
    # pipeline mode answered, knowing what was said in realtime mode
    learning = EXTRACTION_PROMPT.splitlines()[0]
    replies = [r for r in agent.openai.chat_requests if learning not in str(r["messages"][0]["content"])]
    history = replies[-1]["messages"]
    assert {"role": "assistant", "content": GREETING} in history
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.status == "completed" and call.end_reason == "hangup"
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    texts = [(t.role, t.text) for t in turns]
    assert texts[0] == ("agent", GREETING) and ("agent", RESUME_LINE) in texts
    assert texts[-2:] == [("caller", "For tomorrow at eight."), ("agent", "Booked for tomorrow at eight.")]


async def test_a_refused_realtime_connection_is_greeted_in_pipeline_mode(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.fail_next(1, status=503)
    with agent_factory(**realtime_env(fake)) as agent:
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
        assert [c.text.strip() for c in agent.elevenlabs.contexts.values()] == [GREETING]
    assert caller.ended_by == "caller"
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.status == "completed" and call.end_reason == "hangup"


async def test_returning_caller_is_greeted_by_name(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.script("Hi Maria, welcome back.")
    with agent_factory(**realtime_env(fake)) as agent:
        engine = create_engine(agent.settings.database_url)
        async with transaction(session_factory(engine)) as session:
            session.add(Caller(phone="+15550007777", name="Maria"))
        await engine.dispose()
        async with agent.caller(from_number="+15550007777") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.3, timeout=30)

    [session] = fake.sessions
    [request] = [str(item["content"]) for item in session["items"]]
    assert '"Hi Maria, welcome back."' in request
    assert "Name: Maria." in session["session"]["instructions"]
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    [greeting] = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id))
    assert greeting.role == "agent" and greeting.text.startswith("Hi Maria, welcome back")


async def test_the_realtime_model_uses_the_brains_tools(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.transcripts.append("Please ask the owner to call me back.")
    fake.script(
        GREETING,
        RealtimeToolCall("search_knowledge", {"query": "private parties"}),
        RealtimeToolCall("take_message", {"message": "Please call me back about the party", "name": "Dana"}),
        "I have passed your message on.",
    )
    with agent_factory(**realtime_env(fake)) as agent:
        engine = create_engine(agent.settings.database_url)
        store = local_store(agent.settings, engine=engine)
        try:
            text = "Private parties of up to forty guests on Sundays."
            await store.add_document(title="Parties", text=text)
        finally:
            await store.aclose()  # its embedder's client (and socket) too: not left for a later test's GC
            await engine.dispose()
        async with agent.caller(from_number="+15550004444") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("Please ask the owner to call me back"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)

    [session] = fake.sessions
    assert {"take_message", "search_knowledge"} <= {t["name"] for t in session["session"]["tools"]}
    found, taken = [i["output"] for i in session["items"] if i["type"] == "function_call_output"]
    assert "Private parties of up to forty guests on Sundays." in found
    assert '"ok": true' in taken
    [message] = await db_rows(select(Message))
    assert message.body == "Please call me back about the party" and message.phone == "+15550004444"
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert message.call_id == call.id
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert turns[-1].text == "I have passed your message on."
    assert [c["name"] for t in turns for c in (t.tool_calls or [])] == ["search_knowledge", "take_message"]


async def test_silent_caller_is_checked_on_then_hung_up(
    agent_factory: Any, fake_openai_realtime: FakeOpenAIRealtime, db_rows: Any
) -> None:
    fake = fake_openai_realtime
    fake.script(GREETING, "Still there?", "Goodbye for now.")
    env = {
        **realtime_env(fake),
        "PHONE_AGENT_IDLE_TIMEOUT_SECONDS": "1.5",
        "PHONE_AGENT_IDLE_PROMPT": "Still there?",
        "PHONE_AGENT_IDLE_GOODBYE": "Goodbye for now.",
    }
    with agent_factory(**env) as agent:
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_close(timeout=30)

    [session] = fake.sessions
    asked = [str(i["content"]) for i in session["items"]]
    assert len(asked) == 3 and '"Still there?"' in asked[1] and '"Goodbye for now."' in asked[2]
    assert [r["status"] for r in session["responses"]] == ["completed"] * 3
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "idle" and call.ended_at is not None
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [t.text for t in turns] == [GREETING, "Still there?", "Goodbye for now."]
