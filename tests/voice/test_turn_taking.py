"""Turn taking, streaming end to end: a reply is prepared while the turn is confirmed and dropped
when the caller goes on; an utterance with a short pause is one turn; the TTS starts on the first
words of a reply that has no punctuation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from phone_agent.voice import turn_end
from phone_agent.voice.turn_pool import PooledSmartTurnAnalyzer
from tests.fakes.audio import is_silent, read_ulaw_frames, speech_wav
from tests.fakes.media_stream_caller import SILENT_FRAME
from tests.fakes.openai_realtime_stt import FakeOpenAIRealtimeSTT
from tests.running_agent import SHORT_GREETINGS


def spoken(text: str) -> list[bytes]:
    """The frames of ``text`` as espeak says it, without the silence espeak puts around it."""
    frames = read_ulaw_frames(speech_wav(text))
    heard = [i for i, frame in enumerate(frames) if not is_silent(frame)]
    return frames[heard[0] : heard[-1] + 1]


def paused(first: str, pause: float, second: str) -> list[bytes]:
    """Caller audio: ``first``, exactly ``pause`` seconds of silence, ``second`` (one utterance)."""
    return spoken(first) + [SILENT_FRAME] * round(pause / 0.02) + spoken(second) + [SILENT_FRAME] * 10


async def book_a_table_with_a_pause(agent: Any, *, quiet_after: float) -> tuple[str, Any]:
    """One call: after the greeting the caller says "I would like to book a table", pauses 0.7 s
    (Silero hears ~0.9: "table" fades, "for" starts soft), says "for two people please", and waits
    for the reply and then ``quiet_after`` s of quiet. The call SID and the caller's turn."""
    async with agent.caller() as caller:
        await caller.wait_for_agent_audio(timeout=20)
        await caller.wait_for_quiet(0.6, timeout=30)
        turn = await caller.say_frames(paused("I would like to book a table", 0.7, "for two people please"))
        await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
        await caller.wait_for_quiet(quiet_after, timeout=30)
    return caller.call_sid, turn


def streaming(stt: FakeOpenAIRealtimeSTT) -> dict[str, str]:
    return SHORT_GREETINGS | {"PHONE_AGENT_REALTIME_BASE_URL": stt.ws_url + "/v1/realtime"}


async def caller_and_agent_turns(db_rows: Any, call_sid: str) -> list[tuple[str, str]]:
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    return [(t.role, t.text) for t in turns[1:]]  # (after the greeting)


def user_texts(request: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in request["messages"] if m["role"] == "user"]


def reply_requests(agent: Any) -> list[dict[str, Any]]:
    """The call's streamed reply requests (not the learning after the call)."""
    return [r for r in agent.openai.chat_requests if r.get("stream")]


async def test_a_short_pause_inside_an_utterance_is_one_turn_with_one_request(
    agent_factory: Any, db_rows: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT
) -> None:
    stt = fake_openai_realtime_stt
    stt.stt_latency = 0.2
    stt.transcripts.extend(["Thanks,", "that is all."])  # one transcript per commit (the pause commits)
    stt.default_transcript = ""
    with agent_factory(**streaming(stt)) as agent:
        agent.openai.script("You're welcome, goodbye!")
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_frames(paused("Thanks", 0.25, "that is all"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(1.0, timeout=30)
    assert len(stt.commits) == 2  # the pause was heard (and committed) ...
    assert [user_texts(r)[-1] for r in reply_requests(agent)] == ["Thanks, that is all."]  # ... one request
    assert await caller_and_agent_turns(db_rows, caller.call_sid) == [
        ("caller", "Thanks, that is all."),
        ("agent", "You're welcome, goodbye!"),
    ]
    assert turn.agent_talked_over is False


async def test_the_reply_is_requested_before_the_turn_is_confirmed_and_dropped_when_the_caller_goes_on(
    agent_factory: Any, db_rows: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT, monkeypatch: Any
) -> None:
    monkeypatch.setattr(turn_end, "CONFIRM_SECS", 1.2)  # the caller's 0.7 s pause cannot end the turn
    stt = fake_openai_realtime_stt
    stt.transcripts.extend(["I would like to book a table", "for two people please."])
    stt.default_transcript = ""
    with agent_factory(**streaming(stt), PHONE_AGENT_LLM_FIRST_TOKEN_TIMEOUT="5") as agent:
        agent.openai.first_token_latency = 0.9  # the early request is still waiting when cancelled
        agent.openai.script("NEVER SPOKEN: what day would suit you?", "A table for two, of course.")
        call_sid, turn = await book_a_table_with_a_pause(agent, quiet_after=1.0)
    early, final = reply_requests(agent)  # the early request went while the caller paused
    assert user_texts(early)[-1] == "I would like to book a table"
    assert user_texts(final)[-1] == "I would like to book a table for two people please."
    assert 0 not in agent.openai.chat_streams_finished  # cancelled before its first token
    spoken = " ".join(c.text for c in agent.elevenlabs.contexts.values())
    assert "NEVER SPOKEN" not in spoken and "A table for two" in spoken
    assert turn.agent_talked_over is False  # nothing was said while the caller paused
    assert await caller_and_agent_turns(db_rows, call_sid) == [
        ("caller", "I would like to book a table for two people please."),
        ("agent", "A table for two, of course."),
    ]


@pytest.mark.parametrize("stt_mode", ["streaming", "segmented"])
async def test_speech_starts_on_the_first_words_of_a_reply_without_punctuation(
    agent_factory: Any, fake_openai_realtime_stt: FakeOpenAIRealtimeSTT, stt_mode: str
) -> None:
    reply = "I can certainly help you book an appointment for next week and I will need a few details"
    stt = fake_openai_realtime_stt
    stt.transcripts.append("Can I book an appointment?")
    stt.default_transcript = ""
    with agent_factory(**streaming(stt), PHONE_AGENT_STT_MODE=stt_mode) as agent:
        agent.openai.transcripts.append("Can I book an appointment?")
        agent.openai.default_transcript = ""
        agent.openai.tokens_per_second = 8  # a slow model: the sentence takes ~2.5 s to stream
        agent.openai.script(reply)
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("Can I book an appointment"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            finished_when_heard = list(agent.openai.chat_streams_finished)
            await caller._wait_until(lambda: agent.openai.chat_streams_finished, 20, "the reply to stream")
            await caller.wait_for_quiet(1.5, timeout=30)
    [context] = [c for c in agent.elevenlabs.contexts.values() if c.text.startswith("I ")]
    first_piece = context.texts[0]
    assert 1 <= len(first_piece.split()) <= 4 and reply.startswith(first_piece.strip())
    assert reply.startswith(context.text.strip())  # pieces joined as sent: no word glued or lost
    assert finished_when_heard == []  # the caller heard the reply while the LLM was still writing it


@pytest.mark.parametrize(
    ("first", "caller_turns"),
    [  # a period: the turn ends at the pause; a comma: the caller was going on, the turn waits
        ("I would like to book a table.", ["I would like to book a table.", "for two people please."]),
        ("I would like to book a table,", ["I would like to book a table, for two people please."]),
    ],
)
async def test_a_sentence_the_stt_ended_ends_a_turn_smart_turn_doubts_sooner_than_its_fallback(
    agent_factory: Any,
    db_rows: Any,
    fake_openai_realtime_stt: FakeOpenAIRealtimeSTT,
    monkeypatch: Any,
    first: str,
    caller_turns: list[str],
) -> None:
    async def incomplete(_analyzer: Any) -> tuple[EndOfTurnState, None]:
        return EndOfTurnState.INCOMPLETE, None  # smart-turn doubts every pause (its 1 s fallback ends it)

    monkeypatch.setattr(PooledSmartTurnAnalyzer, "analyze_end_of_turn", incomplete)
    stt = fake_openai_realtime_stt
    stt.transcripts.extend([first, "for two people please."])
    stt.default_transcript = ""
    with agent_factory(**streaming(stt)) as agent:
        agent.openai.script("A table for two, of course.", "Of course.")
        # the 0.7 s pause: past SENTENCE_END_SECS, short of smart-turn's fallback
        call_sid, _turn = await book_a_table_with_a_pause(agent, quiet_after=1.5)
    turns = await caller_and_agent_turns(db_rows, call_sid)
    assert [text for role, text in turns if role == "caller"] == caller_turns


@pytest.mark.parametrize(
    ("transcript", "inferences"),
    [  # a sentence the STT ended: the turn is the sentence-end rule's, smart-turn is never asked
        ("Can you tell me your opening hours on Saturday?", 0),
        # no mark: smart-turn is asked once the transcript is in; its 5 s wait holds nothing up
        ("Can you tell me your opening hours on Saturday", 1),
    ],
)
async def test_smart_turn_runs_only_when_the_transcript_leaves_the_turn_open_and_never_holds_it_up(
    agent_factory: Any,
    db_rows: Any,
    fake_openai_realtime_stt: FakeOpenAIRealtimeSTT,
    monkeypatch: Any,
    transcript: str,
    inferences: int,
) -> None:
    asked: list[float] = []
    withdrawn: list[float] = []

    async def queued_behind_other_calls(analyzer: Any) -> tuple[EndOfTurnState, None]:
        if not analyzer._audio_buffer:  # the silence fallback's call: no speech held, no model run
            return EndOfTurnState.INCOMPLETE, None
        asked.append(time.monotonic())
        try:
            await asyncio.sleep(5)  # the verdicts of many other calls are ahead of this one
        except asyncio.CancelledError:
            withdrawn.append(time.monotonic())
            raise
        return EndOfTurnState.COMPLETE, None

    monkeypatch.setattr(PooledSmartTurnAnalyzer, "analyze_end_of_turn", queued_behind_other_calls)
    stt = fake_openai_realtime_stt
    stt.stt_latency = 0.2
    stt.transcripts.append(transcript)
    stt.default_transcript = ""
    with agent_factory(**streaming(stt)) as agent:
        agent.openai.script("We open at nine on Saturdays.")
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("Can you tell me your opening hours on Saturday"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(1.0, timeout=30)
    # the reply did not wait for a verdict (the sentence-end rule or the 1 s fallback ended the turn)
    assert turn.voice_to_voice is not None and turn.voice_to_voice < 3.0
    assert len(asked) == inferences and len(withdrawn) == len(asked)  # withdrawn, never awaited
    assert all(gone - at < 2.0 for at, gone in zip(asked, withdrawn, strict=True))
    assert await caller_and_agent_turns(db_rows, caller.call_sid) == [
        ("caller", transcript),
        ("agent", "We open at nine on Saturdays."),
    ]
