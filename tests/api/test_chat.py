"""The chat API driven by the official ``openai`` client against our app on a real port."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
import uvicorn
from sqlalchemy import select

from phone_agent.app import create_app
from phone_agent.brain.hours import spoken_time
from phone_agent.memory.base import CallerContext, KnowledgeHit, MemoryItem
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Appointment, Call, CallTurn
from tests.fakes.openai import FakeOpenAI, Reply, ToolCall
from tests.fakes.openai_chat import tokenize
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings

API_KEY = "sk-agent-test-key-0123456789"
CALLER = "+15551112222"
NY = ZoneInfo("America/New_York")


class FakeMemory:
    """A small MemoryStore: one known caller and one knowledge chunk."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
        if phone != CALLER:
            return CallerContext(phone=phone)
        return CallerContext(phone=phone, name="Dana", known=True, memories=[MemoryItem(content="Has a dog")])

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        self.queries.append(query)
        return [KnowledgeHit(document_id=1, title="Prices", text="A cleaning costs $90.")]


@dataclass
class Served:
    url: str
    runtime: Runtime
    client: openai.AsyncOpenAI


@pytest.fixture
async def served(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_twilio: FakeTwilioREST
) -> AsyncIterator[Served]:
    settings = twilio_settings(
        tmp_path,
        fake_twilio,
        OPENAI_API_KEY=fake_openai.api_key,
        PHONE_AGENT_LLM_BASE_URL=fake_openai.url + "/v1",
        PHONE_AGENT_API_KEY=API_KEY,
        PHONE_AGENT_OWNER_SMS_NUMBER="+15550001111",
        PHONE_AGENT_BUSINESS_NAME="Bright Dental",
        PHONE_AGENT_OPENAI_BASE_URL=fake_openai.url + "/v1",
        PHONE_AGENT_EMBEDDINGS_ENABLED="false",
    )
    app = create_app(settings, "all")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):  # up to 10 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "the app did not start"
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    yield Served(url, app.state.runtime, client)
    await client.close()
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def next_weekday_at(hour: int, days_ahead: int = 2) -> datetime:
    """A weekday at ``hour`` local time, at least ``days_ahead`` days from now."""
    day = datetime.now(NY).date() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=NY)


async def test_non_streamed_completion_with_persona_memory_and_usage(
    served: Served, fake_openai: FakeOpenAI
) -> None:
    memory = FakeMemory()
    # the memory store the agent asks
    await served.runtime.swap(dataclasses.replace(served.runtime.current, memory=memory))  # type: ignore[arg-type]
    fake_openai.script("A cleaning is ninety dollars.")
    response = await served.client.chat.completions.create(
        model="phone-agent",
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "How much is a cleaning?"},
        ],
        user=CALLER,
    )
    assert response.object == "chat.completion" and response.model == "phone-agent"
    assert response.choices[0].message.content == "A cleaning is ninety dollars."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.prompt_tokens > 0
    # the upstream LLM's usage is passed through
    assert response.usage.completion_tokens == len(tokenize("A cleaning is ninety dollars."))
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    sent = fake_openai.chat_requests[0]
    assert sent["model"] == "gpt-4o-mini" and sent["stream"] is True
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][0]["content"].startswith("You are Ava, the phone receptionist of Bright Dental.")
    assert sent["messages"][0]["content"].endswith("Answer in one sentence.")
    assert "Name: Dana.\n- Has a dog" in sent["messages"][1]["content"]
    assert sent["messages"][2]["content"].endswith("[Prices] A cleaning costs $90.")
    assert sent["messages"][3:] == [{"role": "user", "content": "How much is a cleaning?"}]
    assert [t["function"]["name"] for t in sent["tools"]][:2] == ["book_appointment", "take_message"]
    assert memory.queries == ["How much is a cleaning?"]


async def test_streamed_completion_with_usage(served: Served, fake_openai: FakeOpenAI) -> None:
    fake_openai.script("We open at nine, see you soon.")
    stream = await served.client.chat.completions.create(
        model="phone-agent",
        messages=[{"role": "user", "content": "When do you open?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Caller": CALLER},
        temperature=0.2,
        max_tokens=60,
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "We open at nine, see you soon."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # really streamed
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(tokenize(text))
    assert all(c.id == chunks[0].id for c in chunks)
    sent = fake_openai.chat_requests[0]  # the client's sampling options reach the LLM
    assert (sent["temperature"], sent["max_tokens"], sent["model"]) == (0.2, 60, "gpt-4o-mini")


async def test_wrong_or_missing_key_is_401_in_openai_shape(served: Served) -> None:
    bad = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="sk-wrong-key-0000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await bad.chat.completions.create(model="phone-agent", messages=[{"role": "user", "content": "hi"}])
    await bad.close()
    assert info.value.status_code == 401
    assert info.value.body == {
        "message": "Incorrect API key provided: sk-…0000. The key is PHONE_AGENT_API_KEY.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    async with httpx.AsyncClient(base_url=served.url) as http:
        missing = await http.get("/v1/models")
        ok = await http.get("/v1/models", headers={"authorization": f"Bearer {API_KEY}"})
    assert missing.status_code == 401 and missing.json()["error"]["message"].startswith("You didn't provide")
    assert ok.json()["data"][0]["id"] == "phone-agent"
    models = await served.client.models.list()
    assert [m.id for m in models.data] == ["phone-agent"]


async def test_malformed_body_is_422_with_a_useful_message(served: Served) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await served.client.chat.completions.create(
            model="phone-agent",
            messages=[{"role": "robot", "content": "hi"}],  # type: ignore[list-item]
        )
    assert info.value.status_code == 422
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "messages.0.role"
    assert body["message"].startswith("Invalid request: messages.0.role: Input should be 'system'")
    async with httpx.AsyncClient(base_url=served.url, headers={"authorization": f"Bearer {API_KEY}"}) as http:
        no_messages = await http.post("/v1/chat/completions", json={"model": "phone-agent"})
        not_json = await http.post("/v1/chat/completions", content=b"{oops")
    assert no_messages.status_code == 422
    assert no_messages.json()["error"]["message"] == "Invalid request: messages: Field required."
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["error"]["message"]


async def test_booking_through_the_api_and_a_taken_slot_offers_alternatives(
    served: Served, fake_openai: FakeOpenAI
) -> None:
    slot = next_weekday_at(10)
    fake_openai.script(
        Reply(tool_calls=[ToolCall("book_appointment", {"start": slot.isoformat(), "name": "Dana"})])
    )
    first = await served.client.chat.completions.create(
        model="phone-agent", messages=[{"role": "user", "content": "Book me in"}], user=CALLER
    )
    # the fake LLM, unscripted, reads the tool result back: the confirmation reaches the caller
    assert f"Booked Dana for {spoken_time(slot, NY)}." in (first.choices[0].message.content or "")
    extension = first.model_extra["phone_agent"]  # type: ignore[index]
    assert [(c["name"], c["ok"]) for c in extension["tool_calls"]] == [("book_appointment", True)]
    async with transaction(served.runtime.sessions) as session:
        rows = (await session.scalars(select(Appointment))).all()
    assert [(a.starts_at, a.name, a.phone, a.status) for a in rows] == [(slot, "Dana", CALLER, "booked")]

    fake_openai.script(
        Reply(tool_calls=[ToolCall("book_appointment", {"start": slot.isoformat(), "name": "Sam"})])
    )
    second = await served.client.chat.completions.create(
        model="phone-agent", messages=[{"role": "user", "content": "Book me in"}], user="+15553334444"
    )
    reply = second.choices[0].message.content or ""
    assert "already taken" in reply
    for alternative in (slot - timedelta(minutes=30), slot + timedelta(minutes=30)):
        assert spoken_time(alternative, NY) in reply
    tool_message = fake_openai.chat_requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["ok"] is False


async def test_client_tools_are_handed_back_as_tool_calls(served: Served, fake_openai: FakeOpenAI) -> None:
    weather = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    fake_openai.script(
        Reply(tool_calls=[ToolCall("get_weather", {"city": "Boston"}, id="call_w1")]), "Sunny."
    )
    first = await served.client.chat.completions.create(
        model="phone-agent",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[weather],  # type: ignore[list-item]
    )
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_w1",
        "get_weather",
        {"city": "Boston"},
    )
    second = await served.client.chat.completions.create(
        model="phone-agent",
        tools=[weather],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather?"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content == "Sunny."
    assert fake_openai.chat_requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_w1",
        "content": "sunny",
    }


async def test_tool_loop_is_cut_off_after_five_calls(served: Served, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(*[Reply(tool_calls=[ToolCall("lookup_caller", {})]) for _ in range(8)])
    response = await served.client.chat.completions.create(
        model="phone-agent", messages=[{"role": "user", "content": "Who am I?"}], user=CALLER
    )
    assert response.choices[0].message.content == (
        "Sorry, I couldn't finish that. Can I take a message so someone can call you back?"
    )
    records = response.model_extra["phone_agent"]["tool_calls"]  # type: ignore[index]
    assert len(records) == 5 and all(r["ok"] for r in records)
    assert len(fake_openai.chat_requests) == 6
    assert fake_openai.chat_requests[-1]["tool_choice"] == "none"


async def test_v1_chat_keeps_the_conversation_stores_tool_calls_and_learns(
    served: Served, fake_openai: FakeOpenAI, fake_twilio: FakeTwilioREST
) -> None:
    store = served.runtime.current.memory  # the real local store
    await store.store_memories(CALLER, [MemoryItem(content="Prefers mornings", key="time")], name="Dana")
    learned = {"name": "Dana", "facts": [{"key": "billing", "content": "Wants a call back about the bill"}]}
    fake_openai.script(
        Reply(tool_calls=[ToolCall("take_message", {"message": "Call me about my bill"})]),
        "I've passed that on.",
        Reply(tool_calls=[ToolCall("end_call", {"reason": "caller is done"})]),
        "Goodbye!",
        json.dumps(learned),  # the memory's fact extraction after the conversation ended
    )
    async with httpx.AsyncClient(base_url=served.url, headers={"authorization": f"Bearer {API_KEY}"}) as http:
        first = (await http.post("/v1/chat", json={"caller": CALLER, "message": "Take a message"})).json()
        assert first["reply"] == "I've passed that on." and first["ended"] is False
        conversation = first["conversation_id"]
        second = (
            await http.post(
                "/v1/chat", json={"caller": CALLER, "message": "That's all", "conversation_id": conversation}
            )
        ).json()
        assert (second["reply"], second["ended"], second["conversation_id"]) == (
            "Goodbye!",
            True,
            conversation,
        )
        after = await http.post(
            "/v1/chat", json={"caller": CALLER, "message": "Hello?", "conversation_id": conversation}
        )
        unknown = await http.post(
            "/v1/chat", json={"caller": CALLER, "message": "x", "conversation_id": "chat-x"}
        )
    assert after.status_code == 409 and after.json()["error"]["code"] == "conversation_ended"
    assert unknown.status_code == 404
    # the caller's memory was in the prompt, and the name reached the tool
    assert "Name: Dana.\n- Prefers mornings" in fake_openai.chat_requests[0]["messages"][1]["content"]
    (sms,) = fake_twilio.requests
    assert sms.form == {
        "To": "+15550001111",
        "From": "+15005550006",
        "Body": f"Message for Bright Dental from Dana ({CALLER}): Call me about my bill",
    }
    # the second turn's prompt replayed the first turn's tool call and result
    replay = fake_openai.chat_requests[2]["messages"]
    assert [m["role"] for m in replay[-5:]] == ["user", "assistant", "tool", "assistant", "user"]
    assert replay[-4]["tool_calls"][0]["function"]["name"] == "take_message"
    async with transaction(served.runtime.sessions) as session:
        call = await session.scalar(select(Call).where(Call.call_sid == conversation))
        assert call is not None
        turns = (
            await session.scalars(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
        ).all()
    assert (call.direction, call.status, call.end_reason, call.from_number) == (
        "chat",
        "completed",
        "caller is done",
        CALLER,
    )
    assert [(t.seq, t.role, t.text) for t in turns] == [
        (0, "caller", "Take a message"),
        (1, "agent", "I've passed that on."),
        (2, "caller", "That's all"),
        (3, "agent", "Goodbye!"),
    ]
    assert [r["name"] for r in turns[1].tool_calls or []] == ["take_message"]
    assert turns[1].tool_calls[0]["result"]["forwarded_by_sms"] is True  # type: ignore[index]
    assert [r["name"] for r in turns[3].tool_calls or []] == ["end_call"]
    # after the end, the memory learned from the conversation (in the background)
    async with asyncio.timeout(15):
        while True:
            context = await store.caller_context(CALLER)
            if any(m.content == "Wants a call back about the bill" for m in context.memories):
                break
            await asyncio.sleep(0.05)
    assert "Caller: That's all" in fake_openai.chat_requests[-1]["messages"][1]["content"]
