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
from phone_agent.memory import CallerContext, extract_and_store_after_call, fetch_caller_context
from phone_agent.memory.extraction import ExtractedFacts
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


async def learn(runtime: Runtime, call_sid: str) -> ExtractedFacts | None:
    services = runtime.current
    return await extract_and_store_after_call(
        settings=services.settings, sessions=services.sessions, store=services.memory, call_sid=call_sid
    )


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
    assert (await fetch_caller_context(runtime_for.current.memory, MARIA)).known is False
    openai_fake.script(json.dumps(FACTS))

    facts = await learn(runtime_for, "CA-maria-1")

    assert facts is not None and facts.name == "Maria Lopez"
    request = openai_fake.chat_requests[-1]
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    assert (
        "Caller: Hi, my name is Maria Lopez and I'm asking about home insurance."
        in request["messages"][1]["content"]
    )
    context = await fetch_caller_context(runtime_for.current.memory, MARIA)
    assert context.known and context.name == "Maria Lopez"
    assert context.profile["topic"] == "home insurance"
    assert [(m.key, m.content, m.call_sid) for m in context.memories] == [
        ("home_location", "Her house is in Austin, Texas.", "CA-maria-1")
    ]
    greeting = greeting_for(runtime_for.current.settings, context.name)
    assert greeting.startswith("Hi Maria Lopez, welcome back")
    packed = pack_prompt(
        runtime_for.current.settings, [{"role": "user", "content": "Hi, it's me again."}], caller=context
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
    services = runtime_for.current
    task = runtime_for.spawn_with(services, services.learn_after_call("CA-2"), name="learn-CA-2")
    assert task is not None and await asyncio.wait_for(task, 30) is None  # logged, never raised
    kept = await fetch_caller_context(runtime_for.current.memory, MARIA)
    assert kept.known and kept.name is None and kept.memories == []  # listed in Callers, nothing learned
    assert await learn(runtime_for, "CA-unknown") is None


async def test_a_call_where_the_caller_said_nothing_costs_no_llm_request(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record_call(runtime_for, "CA-silent", MARIA, [("agent", "Hello, thanks for calling.")])
    assert await learn(runtime_for, "CA-silent") is None
    assert openai_fake.chat_requests == []


async def test_fetch_caller_context_never_waits_long_or_raises(runtime_for: Runtime) -> None:
    class SlowStore:
        async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
            await asyncio.sleep(30)
            raise AssertionError("not reached")

    context = await fetch_caller_context(SlowStore(), "+1 555 123 0001", within=0.2)  # type: ignore[arg-type]
    assert context == CallerContext(phone=MARIA)


async def test_delete_caller_hook_forgets_everything(runtime_for: Runtime, openai_fake: FakeOpenAI) -> None:
    await record_call(runtime_for, "CA-3", MARIA, [("caller", "My name is Maria Lopez.")])
    openai_fake.script(json.dumps(FACTS))
    await learn(runtime_for, "CA-3")
    assert await runtime_for.current.forget_caller(MARIA) is True
    async with transaction(runtime_for.sessions) as session:
        for table in (Caller, Call, CallTurn):
            assert await session.scalar(select(func.count()).select_from(table)) == 0
    store = runtime_for.current.memory
    assert await store.retrieve(MARIA, "home insurance Austin") == []
    assert (await fetch_caller_context(runtime_for.current.memory, MARIA)).known is False


async def test_learning_after_a_call_asks_the_llm_over_the_processs_pool(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record_call(runtime_for, "CA-pool-1", MARIA, [("caller", "Hi, I'm Maria Lopez.")])
    openai_fake.script(json.dumps(FACTS))
    sent: list[str] = []

    async def note(request: object) -> None:
        sent.append(str(getattr(request, "url", "")))

    runtime_for.http.event_hooks["request"].append(note)  # the pool every call's clients share

    facts = await runtime_for.current.learn_after_call("CA-pool-1")

    assert facts is not None and facts.name == "Maria Lopez"
    assert [url for url in sent if url.endswith("/chat/completions")] != []  # no client of its own
    assert not runtime_for.http.is_closed  # the extraction's client left the pool open
