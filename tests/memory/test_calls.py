"""The call hooks: learn from call 1, greet by name and know the topic in call 2; privacy delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from phone_agent.brain.packer import pack_prompt
from phone_agent.brain.persona import greeting_for
from phone_agent.config import Settings
from phone_agent.memory import (
    CallerContext,
    delete_caller,
    extract_and_store_after_call,
    fetch_caller_context,
    memory_store_for,
    schedule_after_call,
)
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call, Caller, CallTurn
from tests.fakes.openai import FakeOpenAI

MARIA = "+15551230001"
FACTS = {
    "name": "Maria Lopez",
    "profile": {"topic": "home insurance", "product_interest": "home insurance policy", "preferences": None},
    "facts": [{"key": "home_location", "content": "Her house is in Austin, Texas."}],
}


@pytest.fixture
async def runtime_for(settings_for: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings_for, "all")
    await upgrade(runtime.engine)
    yield runtime
    await runtime.close()


async def record_call(runtime: Runtime, call_sid: str, phone: str, lines: list[tuple[str, str]]) -> None:
    """A finished inbound call with its transcript, as the voice pipeline leaves it."""
    async with transaction(runtime.sessions) as session:
        call = Call(call_sid=call_sid, from_number=phone, to_number="+15550009999", status="completed")
        session.add(call)
        await session.flush()
        session.add_all(
            CallTurn(call_id=call.id, seq=i, role=role, text=said) for i, (role, said) in enumerate(lines)
        )


async def test_call_two_greets_maria_by_name_and_knows_her_topic(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record_call(
        runtime_for,
        "CA-maria-1",
        MARIA,
        [
            ("agent", "Hello, thanks for calling our office. This is Ava. How can I help you today?"),
            ("caller", "Hi, my name is Maria Lopez and I'm asking about home insurance."),
            ("agent", "Happy to help, Maria. Where is the house?"),
            ("caller", "It's in Austin, Texas."),
        ],
    )
    # call 2 starts: nothing known yet (the extraction has not run)
    assert (await fetch_caller_context(runtime_for, MARIA)).known is False
    openai_fake.script(json.dumps(FACTS))

    facts = await extract_and_store_after_call(runtime_for, "CA-maria-1")

    assert facts is not None and facts.name == "Maria Lopez"
    request = openai_fake.chat_requests[-1]
    assert request["response_format"] == {"type": "json_object"}
    assert (
        "Caller: Hi, my name is Maria Lopez and I'm asking about home insurance."
        in request["messages"][1]["content"]
    )
    context = await fetch_caller_context(runtime_for, MARIA)
    assert context.known and context.name == "Maria Lopez"
    assert context.profile["topic"] == "home insurance"
    assert [(m.key, m.content, m.call_sid) for m in context.memories] == [
        ("home_location", "Her house is in Austin, Texas.", "CA-maria-1")
    ]
    greeting = greeting_for(runtime_for.settings, context.name)
    assert greeting.startswith("Hi Maria Lopez, welcome back")
    packed = pack_prompt(
        runtime_for.settings, [{"role": "user", "content": "Hi, it's me again."}], caller=context
    )
    about = [m["content"] for m in packed.messages if "About the caller" in str(m["content"])]
    assert len(about) == 1 and "Name: Maria Lopez." in about[0] and "Topic: home insurance." in about[0]
    assert "Her house is in Austin, Texas." in about[0]
    async with transaction(runtime_for.sessions) as session:
        call = (await session.execute(select(Call).where(Call.call_sid == "CA-maria-1"))).scalar_one()
        caller = (await session.execute(select(Caller).where(Caller.phone == MARIA))).scalar_one()
        assert call.caller_id == caller.id and caller.last_call_at == call.started_at


async def test_learning_runs_in_the_background_and_survives_a_bad_reply(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record_call(runtime_for, "CA-2", MARIA, [("caller", "I want to cancel my policy.")])
    openai_fake.script("Sorry, I can't do JSON today.")
    task = schedule_after_call(runtime_for, "CA-2")
    assert await asyncio.wait_for(task, 30) is None
    assert (await fetch_caller_context(runtime_for, MARIA)).known is False
    assert await extract_and_store_after_call(runtime_for, "CA-unknown") is None


async def test_a_call_where_the_caller_said_nothing_costs_no_llm_request(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record_call(runtime_for, "CA-silent", MARIA, [("agent", "Hello, thanks for calling.")])
    assert await extract_and_store_after_call(runtime_for, "CA-silent") is None
    assert openai_fake.chat_requests == []


async def test_fetch_caller_context_never_waits_long_or_raises(runtime_for: Runtime) -> None:
    class SlowStore:
        async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    real = memory_store_for(runtime_for.settings, runtime_for)
    runtime_for.extras["memory_store"] = SlowStore()
    try:
        context = await fetch_caller_context(runtime_for, "+1 555 123 0001", within=0.2)
    finally:
        runtime_for.extras["memory_store"] = real
    assert context == CallerContext(phone=MARIA)


async def test_delete_caller_hook_forgets_everything(runtime_for: Runtime, openai_fake: FakeOpenAI) -> None:
    await record_call(runtime_for, "CA-3", MARIA, [("caller", "My name is Maria Lopez.")])
    openai_fake.script(json.dumps(FACTS))
    await extract_and_store_after_call(runtime_for, "CA-3")
    assert await delete_caller(runtime_for, MARIA) is True
    async with transaction(runtime_for.sessions) as session:
        for table in (Caller, Call, CallTurn):
            assert await session.scalar(select(func.count()).select_from(table)) == 0
    store = memory_store_for(runtime_for.settings, runtime_for)
    assert await store.retrieve(MARIA, "home insurance Austin") == []
    assert (await fetch_caller_context(runtime_for, MARIA)).known is False
