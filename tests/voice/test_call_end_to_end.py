"""A simulated Twilio caller (real espeak-ng speech) talks to the running agent over /media-stream.

Mid-call it also sends malformed and unknown messages: they are logged and ignored.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import is_silent, speech_wav
from tests.running_agent import SHORT_GREETINGS

JUNK = (
    "not json",
    b"\x00\x01binary",
    "[1, 2, 3]",
    json.dumps({"event": "surprise"}),
    json.dumps({"event": "media", "media": {"payload": "%%%not-base64%%%"}}),
    json.dumps({"event": "media", "media": "nope"}),
    json.dumps({"event": "mark", "mark": {}}),
    json.dumps({"event": "mark", "mark": {"name": "pa:x:y"}}),
    json.dumps({"event": "dtmf", "dtmf": 5}),
)
MARKS = ("caller_stopped", "stt_final", "llm_first_token", "tts_first_audio", "first_audio_sent")


async def test_two_utterances_get_two_spoken_replies(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        agent.script_speech(
            ["I would like to book a table.", "How much does it cost?"],
            ["Of course. For what day and time?", "Ninety dollars a person."],
        )
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)  # the greeting
            for junk in JUNK:
                await caller.send_raw(junk)
            await caller.wait_for_quiet(0.6, timeout=30)
            replies = []
            for text in ("I would like to book a table", "How much does it cost"):
                turn = await caller.say_wav(speech_wav(text))
                replies.append(await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended))
                await caller.wait_for_quiet(0.6, timeout=30)
        call_sid, stream_sid = caller.call_sid, caller.stream_sid

    assert caller.protocol_errors == [] and caller.ended_by == "caller"  # junk did not end the call
    audible = [a for a in caller.agent_audio if not is_silent(a.audio)]
    assert audible and all(a.stream_sid == stream_sid for a in caller.agent_audio)
    assert len(replies) == 2 and replies[0] < replies[1]
    assert caller.marks_received and len(caller.marks_sent_back) == len(caller.marks_received)
    # the LLM saw the persona, the greeting and the first exchange before the second reply
    second = agent.openai.chat_requests[1]["messages"]
    assert second[0]["role"] == "system" and "Bella Cucina" in second[0]["content"]
    assert [m["role"] for m in second[1:]] == ["assistant", "user", "assistant", "user"]
    assert second[3]["content"] == "Of course. For what day and time?"

    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert call.stream_sid == stream_sid and call.status == "completed" and call.ended_at is not None
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns] == [
        ("agent", "Bella Cucina, this is Ava."),
        ("caller", "I would like to book a table."),
        ("agent", "Of course. For what day and time?"),
        ("caller", "How much does it cost?"),
        ("agent", "Ninety dollars a person."),
    ]
    for turn in (turns[2], turns[4]):
        marks = turn.marks
        assert set(MARKS) <= set(marks), marks
        ordered = [marks[name] for name in MARKS]
        assert ordered == sorted(ordered), marks
    print("\nper-turn latency marks (ms since stream start):")
    for turn in turns:
        print(f"  {turn.role:6} {json.dumps(turn.marks)}")
    for i, turn in enumerate((turns[2], turns[4]), 1):
        m = turn.marks
        decided = max(m["turn_detected"], m["stt_final"])
        print(
            f"  reply {i}: STT final +{m['stt_final'] - m['caller_stopped']:.0f} ms, "
            f"end of turn +{m['turn_detected'] - m['caller_stopped']:.0f} ms, "
            f"LLM first token +{m['llm_first_token'] - decided:.0f} ms after both, "
            f"TTS first audio +{m['tts_first_audio'] - m['llm_first_token']:.0f} ms, "
            f"sent +{m['first_audio_sent'] - m['tts_first_audio']:.0f} ms; "
            f"caller stopped -> first audio sent {m['first_audio_sent'] - m['caller_stopped']:.0f} ms"
        )
    print(f"  caller-side voice-to-voice: {[round(t.voice_to_voice or -1, 3) for t in caller.turns]} s")
