"""The brain inside a call: caller memory in the prompt, tools through Pipecat function calling
(``end_call`` hangs up only after the goodbye has played), tool calls stored with the turn."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.memory.base import MemoryItem
from phone_agent.memory.factory import local_store
from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import MS_PER_CHAR, speech_wav
from tests.fakes.openai import Reply, ToolCall
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env

GOODBYE = "Goodbye Maria, enjoy your evening."


async def test_memory_tools_and_end_call(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = twilio_env(fake_twilio)
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        store = local_store(agent.settings)
        await store.store_memories(
            "+15550007777", [MemoryItem(content="Prefers the window table.")], name="Maria"
        )
        await store.aclose()
        end_call = Reply(tool_calls=[ToolCall("end_call", {"reason": "caller is done"})])
        agent.script_speech(["That's all, thank you."], [end_call, GOODBYE])
        async with agent.caller(
            from_number="+15550007777", twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid
        ) as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("That is all thank you"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            played_before = len(caller.played_audio)
            await caller.wait_for_close(timeout=30)

    assert caller.ended_by == "agent_hangup"
    goodbye_ms = (len(caller.played_audio) - played_before) / 8
    assert goodbye_ms >= 0.8 * MS_PER_CHAR * len(GOODBYE)  # the goodbye played before the hang-up
    first = agent.openai.chat_requests[0]
    assert "end_call" in [t["function"]["name"] for t in first["tools"]]
    prompt = "\n".join(str(m.get("content")) for m in first["messages"] if m["role"] == "system")
    assert "Maria" in prompt and "window table" in prompt  # caller memory reached the LLM
    # the tool's result went back to the model (a later request; an early one may have been withdrawn)
    assert any(m["role"] == "tool" for r in agent.openai.chat_requests[1:] for m in r["messages"]), [
        [(m["role"], str(m.get("content"))[:40], bool(m.get("tool_calls"))) for m in r["messages"]]
        for r in agent.openai.chat_requests
    ]
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "agent_hangup"
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert turns[0].text == "Hi Maria, welcome back."
    assert turns[-1].text == GOODBYE
    assert [c["name"] for c in turns[-1].tool_calls] == ["end_call"] and turns[-1].tool_calls[0]["ok"]
