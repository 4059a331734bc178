"""Every finished call gets a review (summary, intent, outcome), from the LLM's structured output in
the same request as the facts, from the rows the call left, or from the rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from phone_agent.config import Settings
from phone_agent.memory.summary import CallEvidence, normalise_outcome, review_from_model, two_sentences
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call, Caller, CallTurn, Message
from tests.fakes.openai import FakeOpenAI

DANA = "+15551230002"


@pytest.fixture
async def runtime_for(settings_for: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings_for, "all")
    await upgrade(runtime.engine)
    yield runtime
    await runtime.close()


async def record(
    runtime: Runtime, call_sid: str, lines: list[tuple[str, str]], *, message: bool = False
) -> None:
    async with transaction(runtime.sessions) as session:
        call = Call(call_sid=call_sid, from_number=DANA, status="completed", end_reason="caller_hangup")
        session.add(call)
        await session.flush()
        session.add_all(CallTurn(call_id=call.id, seq=i, role=r, text=t) for i, (r, t) in enumerate(lines))
        if message:
            session.add(Message(call_id=call.id, kind="message", phone=DANA, body="Call me back"))


async def review(runtime: Runtime, call_sid: str) -> Call:
    await runtime.current.learn_after_call(call_sid)  # as after a call: errors logged, not raised
    async with transaction(runtime.sessions) as session:
        return (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one()


async def test_the_model_writes_summary_intent_and_outcome_in_the_fact_request(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record(runtime_for, "CA-s1", [("agent", "Hello."), ("caller", "Is the office open on Saturday?")])
    openai_fake.structured_for = lambda body: {
        "name": None,
        "profile": {
            "topic": "opening hours",
            "product_interest": None,
            "preferences": None,
            "open_requests": None,
        },
        "facts": [],
        "summary": "A caller asked whether the office opens on Saturday. The agent gave the hours. "
        "A third sentence is dropped.",
        "intent": "Saturday opening hours",
        "outcome": "answered",
    }
    call = await review(runtime_for, "CA-s1")
    [request] = openai_fake.chat_requests  # one request: facts and review together
    assert (
        request["response_format"]["json_schema"]["schema"]["properties"]["outcome"]["enum"][0] == "answered"
    )
    assert call.summary == "A caller asked whether the office opens on Saturday. The agent gave the hours."
    assert (call.intent, call.outcome, call.summary_source) == ("Saturday opening hours", "answered", "llm")
    async with transaction(runtime_for.sessions) as session:  # no name given: the caller is still kept
        caller = (await session.execute(select(Caller).where(Caller.phone == DANA))).scalar_one()
    assert caller.name is None and call.caller_id == caller.id


async def test_a_taken_message_is_the_outcome_whatever_the_model_says(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record(runtime_for, "CA-s2", [("caller", "Tell Bob to call me back.")], message=True)
    call = await review(runtime_for, "CA-s2")  # the fake's own schema instance: outcome "answered"
    assert call.outcome == "message_taken" and call.summary_source == "llm" and call.summary
    assert "took 1 message(s)" in openai_fake.chat_requests[-1]["messages"][1]["content"]


async def test_silence_and_a_broken_model_still_leave_a_review(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record(runtime_for, "CA-s3", [("agent", "Hello, thanks for calling.")])
    call = await review(runtime_for, "CA-s3")
    assert openai_fake.chat_requests == []
    assert (call.outcome, call.summary_source) == ("abandoned", "rules")
    assert call.summary.startswith("The caller hung up before saying anything")
    async with transaction(runtime_for.sessions) as session:  # listed in Callers all the same
        caller = (await session.execute(select(Caller).where(Caller.phone == DANA))).scalar_one()
    assert call.caller_id == caller.id and caller.name is None

    await record(runtime_for, "CA-s4", [("caller", "I want to cancel my policy.")], message=True)
    openai_fake.script("Sorry, I can't do JSON today.")
    call = await review(runtime_for, "CA-s4")
    assert (call.outcome, call.summary_source) == ("message_taken", "rules")
    assert (
        call.summary
        == "The caller said: “I want to cancel my policy.” The agent took 1 message(s) for the owner."
    )


def test_the_reading_of_a_model_reply_is_tolerant() -> None:
    assert normalise_outcome("Message taken") == "message_taken"
    assert normalise_outcome("BOOKED") == "appointment_booked"
    assert normalise_outcome("hung-up") == "abandoned"
    assert normalise_outcome("weird") is None and normalise_outcome(3) is None
    assert two_sentences("  One.  Two!\nThree? ") == "One. Two!"
    assert two_sentences("null") is None and two_sentences(None) is None
    nothing = CallEvidence()
    # an outcome that needs a row is not taken from the model alone
    assert (
        review_from_model({"summary": "Hi.", "outcome": "transferred"}, nothing, "hi").outcome == "answered"
    )
    assert review_from_model({"summary": "Spam.", "outcome": "Spam"}, nothing, "hi").outcome == "spam"
    assert review_from_model({"outcome": "spam"}, nothing, "buy now").source == "rules"
    booked = CallEvidence(bookings=1)
    assert (
        review_from_model({"summary": "x", "outcome": "spam"}, booked, "hi").outcome == "appointment_booked"
    )


def test_reply_json_is_found_in_prose_and_fences() -> None:
    from phone_agent.memory.extraction import parse_facts

    reply = (
        "Here you go:\n```json\n"
        + json.dumps({"facts": [], "summary": "S.", "outcome": "voicemail"})
        + "\n```"
    )
    facts = parse_facts(reply)
    assert facts.review == {"summary": "S.", "intent": None, "outcome": "voicemail"}


async def test_a_model_without_json_schemas_is_asked_for_a_json_object(
    runtime_for: Runtime, openai_fake: FakeOpenAI
) -> None:
    await record(runtime_for, "CA-s5", [("caller", "Is this the right number for claims?")])
    openai_fake.models_without_schemas.add(runtime_for.current.settings.llm_model)
    openai_fake.script('{"facts": [], "summary": "Asked about claims. Was told yes.", "outcome": "Answered"}')
    call = await review(runtime_for, "CA-s5")
    refused, asked = openai_fake.chat_requests
    assert refused["response_format"]["type"] == "json_schema" and asked["response_format"] == {
        "type": "json_object"
    }
    assert (call.summary, call.outcome, call.summary_source) == (
        "Asked about claims. Was told yes.",
        "answered",
        "llm",
    )
