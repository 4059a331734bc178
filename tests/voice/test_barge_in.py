"""Barge-in: caller speech during the agent's reply sends `clear`, stops the agent, and the
conversation keeps only the part of the reply the caller heard."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import MS_PER_CHAR, is_silent, speech_wav
from tests.running_agent import SHORT_GREETINGS

REPLY = (
    "Our tasting menu has seven courses, starting with a chilled tomato soup, then fresh pasta "
    "with black truffles, a grilled sea bass, and a lemon sorbet to finish."
)


async def test_caller_speech_clears_and_only_heard_text_is_kept(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        agent.script_speech(
            ["What is on the tasting menu?", "How much does it cost?"], [REPLY, "It is ninety dollars."]
        )
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            question = await caller.say_wav(speech_wav("What is on the tasting menu"))
            await caller.wait_for_agent_audio(timeout=20, since=question.speech_ended)
            played_before = len(caller.played_audio)
            await caller.send_silence(1.5)  # let part of the reply play
            barge = await caller.say_wav(speech_wav("How much does it cost"))
            played_reply_ms = (len(caller.played_audio) - played_before) / 8
            await caller.wait_for_agent_audio(timeout=20, since=barge.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)

    assert caller.protocol_errors == []
    assert barge.speech_started is not None and barge.speech_ended is not None
    clears = [t for t in caller.clears if t >= barge.speech_started]
    assert clears and clears[0] < barge.speech_ended  # cleared while the caller was still talking
    cut = clears[0]
    # the interrupted reply stopped: nothing audible arrived between the clear and the next answer
    assert not [a for a in caller.agent_audio if cut < a.at < barge.speech_ended and not is_silent(a.audio)]

    messages = agent.openai.chat_requests[1]["messages"]
    assert [m["role"] for m in messages[-3:]] == ["user", "assistant", "user"]
    heard = messages[-2]["content"]
    assert heard and len(heard) < len(REPLY) and REPLY.startswith(heard.rstrip(".,"))
    # what we kept is what the phone played, to within a word (the fake TTS: MS_PER_CHAR per character)
    heard_ms = len(heard) * MS_PER_CHAR
    assert played_reply_ms - 900 < heard_ms <= played_reply_ms + 100, (heard, played_reply_ms)

    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    interrupted = [t for t in turns if t.interrupted]
    assert len(interrupted) == 1 and interrupted[0].role == "agent"
    assert interrupted[0].text == heard and interrupted[0].planned_text == REPLY
    assert [t.text for t in turns[-2:]] == ["How much does it cost?", "It is ninety dollars."]
    print(
        f"\nbarge-in: heard {heard!r} ({len(heard) * MS_PER_CHAR} ms of tone), "
        f"phone played {played_reply_ms:.0f} ms"
    )
