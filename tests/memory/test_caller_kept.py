"""Caller kept (issue 12): the caller's row exists from their first call, named or not; a failed
extraction keeps the transcript and the caller; the extraction asks for structured output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from phone_agent.config import Settings
from phone_agent.runtime import Runtime
from phone_agent.storage.calls import add_turn, open_call
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.routing import is_returning
from phone_agent.storage.tables import Call, Caller, CallTurn
from tests.fakes.openai import FakeOpenAI

NEW = "+15557770001"


@pytest.fixture
async def runtime(settings_for: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings_for, "all")
    await upgrade(runtime.engine)
    yield runtime
    await runtime.close()


async def scalar(runtime: Runtime, statement: object) -> object:
    async with runtime.sessions() as session:
        return await session.scalar(statement)  # type: ignore[call-overload]


async def test_a_first_call_makes_the_caller_and_a_failed_extraction_keeps_everything(
    runtime: Runtime, openai_fake: FakeOpenAI
) -> None:
    call_id = await open_call(runtime.sessions, call_sid="CA-new-1", from_number="+1 (555) 777-0001")
    assert not await is_returning(runtime.sessions, NEW, "CA-new-1")  # its own new row does not count
    caller = await scalar(runtime, select(Caller).where(Caller.phone == NEW))
    assert isinstance(caller, Caller) and caller.name is None
    assert await scalar(runtime, select(Call.caller_id).where(Call.id == call_id)) == caller.id
    await add_turn(runtime.sessions, call_id=call_id, role="caller", text="Hi, I'd like to book a table.")
    await add_turn(runtime.sessions, call_id=call_id, role="agent", text="Of course, for when?")

    openai_fake.fail_next(10, status=500, path="/chat/completions")
    services = runtime.current
    assert await services.learn_after_call("CA-new-1") is None  # logged, not raised

    assert await scalar(runtime, select(func.count()).select_from(Caller).where(Caller.phone == NEW)) == 1
    turns = await scalar(
        runtime, select(func.count()).select_from(CallTurn).where(CallTurn.call_id == call_id)
    )
    assert turns == 2
    # the next call from the number is a returning caller, even though nothing was learnt
    await open_call(runtime.sessions, call_sid="CA-new-2", from_number=NEW)
    assert await is_returning(runtime.sessions, NEW, "CA-new-2")


async def test_the_extraction_asks_for_the_json_schema_and_names_the_caller(
    runtime: Runtime, openai_fake: FakeOpenAI
) -> None:
    call_id = await open_call(runtime.sessions, call_sid="CA-named", from_number=NEW)
    first_id = await scalar(runtime, select(Caller.id).where(Caller.phone == NEW))
    await add_turn(
        runtime.sessions, call_id=call_id, role="caller", text="This is Dana Whitfield, call me back."
    )
    review = {
        "name": "Dana Whitfield",
        "profile": {
            "topic": "a call-back",
            "product_interest": None,
            "preferences": None,
            "open_requests": None,
        },
        "facts": [{"key": "wants_callback", "content": "Wants a call back."}],
        "summary": "Dana asked for a call back.",
        "intent": "call back",
        "outcome": "answered",
    }
    # a model that wraps its JSON in prose and a code fence is still read
    openai_fake.script("Here you go:\n```json\n" + json.dumps(review) + "\n```")
    facts = await runtime.current.learn_after_call("CA-named")
    (request,) = openai_fake.chat_requests
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    assert facts is not None and facts.name == "Dana Whitfield"
    caller = await scalar(runtime, select(Caller).where(Caller.phone == NEW))
    assert isinstance(caller, Caller) and caller.id == first_id and caller.name == "Dana Whitfield"


async def test_withheld_numbers_make_no_caller_and_first_calls_at_once_make_one(runtime: Runtime) -> None:
    for sid, number in (("CA-anon", "+266696687"), ("CA-client", "client:alice"), ("CA-none", None)):
        await open_call(runtime.sessions, call_sid=sid, from_number=number)
    assert await scalar(runtime, select(func.count()).select_from(Caller)) == 0
    await asyncio.gather(
        *(open_call(runtime.sessions, call_sid=f"CA-same-{i}", from_number=NEW) for i in range(4))
    )
    assert await scalar(runtime, select(func.count()).select_from(Caller)) == 1
    linked = await scalar(
        runtime, select(func.count(func.distinct(Call.caller_id))).where(Call.from_number == NEW)
    )
    assert linked == 1
