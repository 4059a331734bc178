"""The softphone's websocket (/admin/web-call) driven as the page drives it: a logged-in owner calls the
agent with real espeak-ng speech at 16 kHz; the call runs the phone pipeline (persona, tools, turns
with their timing marks) and is stored with channel "web". Who may not call is refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from phone_agent.memory.base import MemoryItem
from phone_agent.memory.factory import local_store
from phone_agent.storage.tables import AuditEntry, Call, CallTurn
from tests.admin.conftest import PASSWORD
from tests.admin.web_caller import WebCaller, admin_session, audible
from tests.fakes.audio import speech_pcm16
from tests.fakes.openai import Reply, ToolCall
from tests.running_agent import SHORT_GREETINGS

MARKS = ("caller_stopped", "stt_final", "llm_first_token", "tts_first_audio", "first_audio_sent")


async def test_owner_calls_the_agent_from_the_admin_page(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS) as agent:
        base = agent.ws_url.replace("ws://", "http://")
        session = admin_session(base)
        agent.script_speech(["I would like to book a table."], ["Of course. For what day and time?"])
        async with WebCaller(base, session, caller="(555) 010-0200") as call:
            assert call.error is None and call.started is not None
            assert call.started["sample_rate"] == 16000
            await call.wait_for_agent_audio(timeout=20)  # the greeting
            await call.wait_for_quiet(0.6)
            turn = await call.say(speech_pcm16("I would like to book a table", 16000))
            await call.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await call.wait_for_quiet(0.6)
        call_sid = call.started["call_sid"]

    assert sum(len(pcm) for _, pcm in call.audio if audible(pcm)) > 16000  # over 0.5 s of voice
    assert call.marks_received and set(call.marks_sent_back) <= set(call.marks_received)
    request = agent.openai.chat_requests[0]["messages"]
    assert request[0]["role"] == "system" and "Bella Cucina" in request[0]["content"]
    assert request[-1] == {"role": "user", "content": "I would like to book a table."}

    [row] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert (row.channel, row.from_number, row.status) == ("web", "+15550100200", "completed")
    assert row.ended_at is not None and row.instance_id is None
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == row.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns] == [
        ("agent", "Bella Cucina, this is Ava."),
        ("caller", "I would like to book a table."),
        ("agent", "Of course. For what day and time?"),
    ]
    marks = turns[2].marks
    assert [marks[name] for name in MARKS] == sorted(marks[name] for name in MARKS), marks
    audit = await db_rows(select(AuditEntry).where(AuditEntry.action == "softphone.call"))
    assert [a.target for a in audit] == [call_sid]
    print(f"\nsoftphone voice-to-voice (client side): {turn.voice_to_voice:.3f} s; marks {json.dumps(marks)}")


REPLY = (
    "Our tasting menu has seven courses, starting with a chilled tomato soup, then fresh pasta "
    "with black truffles, a grilled sea bass, and a lemon sorbet to finish."
)


async def test_owner_talks_over_the_agent(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS) as agent:
        session = admin_session(agent.ws_url.replace("ws://", "http://"))
        agent.script_speech(
            ["What is on the tasting menu?", "How much does it cost?"], [REPLY, "It is ninety dollars."]
        )
        async with WebCaller(agent.ws_url.replace("ws://", "http://"), session) as call:
            await call.wait_for_agent_audio(timeout=20)
            await call.wait_for_quiet(0.6)
            question = await call.say(speech_pcm16("What is on the tasting menu", 16000))
            await call.wait_for_agent_audio(timeout=20, since=question.speech_ended)
            await asyncio.sleep(1.5)  # part of the reply plays
            barge = await call.say(speech_pcm16("How much does it cost", 16000))
            await call.wait_for_agent_audio(timeout=20, since=barge.speech_ended)
            await call.wait_for_quiet(0.6)
        call_sid = call.started["call_sid"] if call.started else ""

    assert barge.speech_started is not None and barge.speech_ended is not None
    clears = [t for t in call.clears if t >= barge.speech_started]
    assert clears and clears[0] < barge.speech_ended  # cleared while the owner was still talking
    assert not [at for at, pcm in call.audio if clears[0] < at < barge.speech_ended and audible(pcm)]
    heard = agent.openai.chat_requests[1]["messages"][-2]["content"]
    assert heard and len(heard) < len(REPLY) and REPLY.startswith(heard.rstrip(".,"))
    [row] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == row.id).order_by(CallTurn.seq))
    [cut] = [t for t in turns if t.interrupted]
    assert (cut.role, cut.text, cut.planned_text) == ("agent", heard, REPLY)
    assert [t.text for t in turns[-2:]] == ["How much does it cost?", "It is ninety dollars."]


async def test_memory_of_the_test_number_and_the_end_call_tool(agent_factory: Any, db_rows: Any) -> None:
    goodbye = "Goodbye Maria, enjoy your evening."
    with agent_factory(ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS) as agent:
        store = local_store(agent.settings)
        await store.store_memories(
            "+15550100200", [MemoryItem(content="Prefers the window table.")], name="Maria"
        )
        await store.aclose()
        end_call = Reply(tool_calls=[ToolCall("end_call", {"reason": "caller is done"})])

        def reply_for(messages: list[dict[str, Any]]) -> Reply:
            # keyed on the conversation, not on the request count: a reply requested early
            # (voice/turn_end.py) that wants a tool is withdrawn and asked again
            if any(m.get("role") == "tool" for m in messages):
                return Reply(text=goodbye)
            return end_call

        agent.script_speech(["That's all, thank you."], [])
        agent.openai.reply_for = reply_for
        base = agent.ws_url.replace("ws://", "http://")
        async with WebCaller(base, admin_session(base), caller="+1 (555) 010-0200") as call:
            await call.wait_for_agent_audio(timeout=20)
            await call.wait_for_quiet(0.6)
            turn = await call.say(speech_pcm16("That is all thank you", 16000))
            await call.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await call.wait_for_close(timeout=30)  # the agent hangs up after its goodbye
        call_sid = call.started["call_sid"] if call.started else ""

    assert {"event": "ended"} in call.events
    first = agent.openai.chat_requests[0]
    prompt = "\n".join(str(m.get("content")) for m in first["messages"] if m["role"] == "system")
    assert "Maria" in prompt and "window table" in prompt  # the test number's memory reached the LLM
    [row] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert (row.channel, row.end_reason) == ("web", "agent_hangup")
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == row.id).order_by(CallTurn.seq))
    assert turns[0].text == "Hi Maria, welcome back." and turns[-1].text == goodbye
    assert [c["name"] for c in turns[-1].tool_calls] == ["end_call"] and turns[-1].tool_calls[0]["ok"]


async def test_who_may_not_call(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS) as agent:
        base = agent.ws_url.replace("ws://", "http://")
        session = admin_session(base)
        with pytest.raises(InvalidStatus) as refused:  # another site's page: no handshake at all
            async with WebCaller(base, session, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        cases = {
            "Missing or wrong CSRF token; reload the page.": {"csrf": "forged"},
            "Your admin session has ended: log in again.": {"session": type(session)("nope", session.csrf)},
        }
        for expected, change in cases.items():
            who = change.pop("session", session)
            async with WebCaller(base, who, **change) as call:
                assert call.error == expected and call.started is None
            assert call.close_code == 1008
        async with WebCaller(base, session, caller="not a number") as call:
            assert call.error is not None and call.error.startswith("Test caller number: not a phone number")
    assert await db_rows(select(Call)) == []  # no call was opened
