"""The brain in a small Pipecat pipeline driven by frames: chain failover, canned reply, tools, end_call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    LLMFullResponseEndFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner
from sqlalchemy import select

from phone_agent.brain.builtins import default_registry
from phone_agent.brain.hours import spoken_time
from phone_agent.brain.llm import canned_reply
from phone_agent.brain.packer import messages_tokens
from phone_agent.brain.persona import persona_prompt
from phone_agent.brain.pipeline import CallBrain, build_call_brain, build_pipeline_llm, register_tools
from phone_agent.brain.tools import ToolContext
from phone_agent.config import Settings
from phone_agent.memory.base import CallerContext, KnowledgeHit, MemoryItem
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Appointment
from phone_agent.telephony.control import CallControl
from tests.brain.test_llm import chain_settings
from tests.fakes.openai import FakeOpenAI, Reply, ToolCall
from tests.fakes.twilio_rest import FakeTwilioREST

NY = ZoneInfo("America/New_York")
CALLER = "+15551112222"


class Collector(FrameProcessor):
    """Records text the LLM produced; sets an event at the end of every response."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.spoken: list[str] = []
        self.responses = 0
        self.response_ended = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            self.text.append(frame.text)
        elif isinstance(frame, TTSSpeakFrame):
            self.spoken.append(frame.text)
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.responses += 1
            self.response_ended.set()
        await self.push_frame(frame, direction)

    async def wait_responses(self, count: int) -> None:
        async with asyncio.timeout(15):
            while self.responses < count:
                self.response_ended.clear()
                await self.response_ended.wait()


class Call:
    """One call's brain: context aggregators, the chained LLM and the tools, in a running pipeline."""

    def __init__(
        self,
        settings: Settings,
        ctx: ToolContext | None = None,
        *,
        caller: CallerContext | None = None,
        memory: object = None,
        history: list[dict] | None = None,
        brain: CallBrain | None = None,
    ) -> None:
        self.llm = brain.llm if brain else build_pipeline_llm(settings, caller=caller, memory=memory)  # type: ignore[arg-type]
        context = LLMContext(messages=list(history or []))
        if brain is not None:
            context = LLMContext(tools=brain.tools)
        elif ctx is not None:
            context = LLMContext(
                messages=history or [], tools=register_tools(self.llm, default_registry(), ctx)
            )
        self.context = context
        aggregators = LLMContextAggregatorPair(context)
        self.collector = Collector()
        self.worker = PipelineWorker(
            Pipeline([aggregators.user(), self.llm, self.collector, aggregators.assistant()]),
            params=PipelineParams(),
            cancel_on_idle_timeout=False,
            enable_rtvi=False,
        )
        self.runner = WorkerRunner()
        self.started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(_worker: object, _frame: object) -> None:
            self.started.set()

    async def __aenter__(self) -> Call:
        await self.runner.add_workers(self.worker)
        self.task = asyncio.create_task(self.runner.run())
        await asyncio.wait_for(self.started.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.queue_frame(EndFrame())
        await asyncio.wait_for(self.task, 10)
        await self.llm.chain.aclose()

    async def say(self, text: str) -> None:
        await self.worker.queue_frame(
            LLMMessagesAppendFrame(messages=[{"role": "user", "content": text}], run_llm=True)
        )


async def test_chain_failover_inside_pipecat(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    with FakeOpenAI(api_key="sk-secondary") as secondary:
        secondary.models.add("llama-3.1-8b")
        secondary.script("Secondary here, how can I help?")
        fake_openai.fail_next(1, status=500)
        settings = chain_settings(tmp_path, fake_openai.url + "/v1", secondary)
        async with Call(settings) as call:
            await call.say("Hello?")
            await call.collector.wait_responses(1)
        assert "".join(call.collector.text) == "Secondary here, how can I help?"
        assert call.llm.last_stream is not None and call.llm.last_stream.failures == ["primary: HTTP 500"]
        sent = secondary.chat_requests[0]
        assert sent["model"] == "llama-3.1-8b"
        assert sent["messages"][0]["content"].startswith(persona_prompt(settings) + "\nNow it is ")
        assert sent["messages"][1:] == [{"role": "user", "content": "Hello?"}]


class Knowledge:
    """A knowledge base that always finds the parking note."""

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        return [
            KnowledgeHit(document_id=1, title="Parking", text=f"Free parking behind the building ({query}).")
        ]


async def test_pipeline_prompt_is_packed_with_memory_knowledge_and_budget(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = chain_settings(tmp_path, fake_openai.url + "/v1", None, PHONE_AGENT_LLM_CONTEXT_TOKENS="600")
    caller = CallerContext(phone=CALLER, name="Dana", known=True, memories=[MemoryItem(content="Has a dog")])
    old_turns = []
    for i in range(40):
        old_turns += [
            {"role": "user", "content": f"Old question number {i} about something long ago."},
            {"role": "assistant", "content": f"Old answer number {i}, nothing important."},
        ]
    async with Call(settings, caller=caller, memory=Knowledge(), history=old_turns) as call:
        await call.say("Where can I park?")
        await call.collector.wait_responses(1)
    sent = fake_openai.chat_requests[0]["messages"]
    assert sent[1]["content"] == f"About the caller ({CALLER}), from earlier calls:\nName: Dana.\n- Has a dog"
    assert sent[2]["content"].endswith("[Parking] Free parking behind the building (Where can I park?).")
    assert sent[3]["content"].startswith("Summary of the earlier conversation (older turns left out)")
    assert sent[-1] == {"role": "user", "content": "Where can I park?"}
    assert sent[-3] == old_turns[-2] and len(sent) < len(old_turns)  # newest old turns kept, oldest dropped
    assert messages_tokens(sent) <= 600


async def test_both_down_speaks_the_canned_reply_in_the_pipeline(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.hang_next()
    settings = chain_settings(
        tmp_path, fake_openai.url + "/v1", None, PHONE_AGENT_LLM_FIRST_TOKEN_TIMEOUT="0.3"
    )
    async with Call(settings) as call:
        await call.say("Hello?")
        await call.collector.wait_responses(1)
    assert "".join(call.collector.text) == canned_reply(settings)


@pytest.fixture
async def tool_call(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_twilio: FakeTwilioREST
) -> AsyncIterator[tuple[Settings, ToolContext, Runtime]]:
    from tests.telephony.test_control import twilio_settings  # noqa: I001

    settings = twilio_settings(
        tmp_path,
        fake_twilio,
        OPENAI_API_KEY=fake_openai.api_key,
        PHONE_AGENT_LLM_BASE_URL=fake_openai.url + "/v1",
    )
    runtime = Runtime.create(settings, "all")
    await upgrade(runtime.engine)
    twilio_call = fake_twilio.add_call(from_=CALLER)
    control = CallControl(settings)
    ctx = ToolContext(
        settings=settings,
        sessions=runtime.sessions,
        control=control,
        caller_phone=CALLER,
        call_sid=twilio_call["sid"],
        channel="phone",
    )
    yield settings, ctx, runtime
    await control.aclose()
    await runtime.close()


async def test_tools_run_through_pipecat_function_calling(
    tool_call: tuple[Settings, ToolContext, Runtime], fake_openai: FakeOpenAI
) -> None:
    settings, ctx, runtime = tool_call
    day = datetime.now(NY).date() + timedelta(days=3)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    slot = datetime(day.year, day.month, day.day, 11, 0, tzinfo=NY)
    fake_openai.script(
        Reply(tool_calls=[ToolCall("book_appointment", {"start": slot.isoformat(), "name": "Dana"})])
    )
    async with Call(settings, ctx) as call:
        await call.say("Book me for eleven")
        await call.collector.wait_responses(2)  # the tool call, then the answer reading its result
    assert f"Booked Dana for {spoken_time(slot, NY)}." in "".join(call.collector.text)
    advertised = [t["function"]["name"] for t in fake_openai.chat_requests[0]["tools"]]
    assert advertised == default_registry().names
    tool_message = fake_openai.chat_requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["ok"] is True
    async with transaction(runtime.sessions) as session:
        rows = (await session.scalars(select(Appointment))).all()
    assert [(a.starts_at, a.name, a.phone) for a in rows] == [(slot, "Dana", CALLER)]
    assert [r["name"] for r in ctx.take_records()] == ["book_appointment"]


async def test_end_call_in_the_pipeline_waits_for_the_goodbye(
    tool_call: tuple[Settings, ToolContext, Runtime], fake_openai: FakeOpenAI, fake_twilio: FakeTwilioREST
) -> None:
    settings, ctx, _ = tool_call
    fake_openai.script(Reply(tool_calls=[ToolCall("end_call", {"reason": "caller said bye"})]), "Goodbye!")
    async with Call(settings, ctx) as call:
        await call.say("Bye")
        await call.collector.wait_responses(2)
        assert "".join(call.collector.text) == "Goodbye!"
        assert ctx.pending_action() and fake_twilio.requests == []  # goodbye not played yet
        await ctx.speech_finished()  # the voice pipeline's hook: the goodbye audio has played
    (request,) = fake_twilio.requests
    assert (request.method, request.path, request.form) == (
        "POST",
        f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls/{ctx.call_sid}.json",
        {"Status": "completed"},
    )


async def test_tool_loop_is_cut_off_in_the_pipeline(
    tool_call: tuple[Settings, ToolContext, Runtime], fake_openai: FakeOpenAI
) -> None:
    settings, ctx, _ = tool_call
    fake_openai.script(*[Reply(tool_calls=[ToolCall("lookup_caller", {})]) for _ in range(10)])
    async with Call(settings, ctx) as call:
        await call.say("Who am I?")
        await call.collector.wait_responses(settings.llm_max_tool_calls + 3)
        await asyncio.sleep(0)  # let the cut-off line reach the collector
    records = ctx.take_records()
    assert len(records) == settings.llm_max_tool_calls and all(r["name"] == "lookup_caller" for r in records)
    assert call.collector.spoken == [
        "Sorry, I couldn't finish that. Can I take a message so someone can call you back?"
    ]
    assert len(fake_openai.chat_requests) == settings.llm_max_tool_calls + 3


async def test_build_call_brain_wires_runtime_memory_tools_and_the_pipeline_hang_up(
    tool_call: tuple[Settings, ToolContext, Runtime], fake_openai: FakeOpenAI, fake_twilio: FakeTwilioREST
) -> None:
    settings, _, runtime = tool_call
    hung_up: list[str] = []

    async def hang_up() -> None:
        hung_up.append("pipeline hang-up")

    caller = CallerContext(phone=CALLER, name="Dana", known=True)
    services = runtime.current
    ctx = services.tool_context(
        caller_phone=caller.phone,
        caller_name=caller.name,
        call_sid="CA-live",
        channel="phone",
        on_hang_up=hang_up,
    )
    brain = build_call_brain(ctx, chain=services.llm, caller=caller)
    fake_openai.script(
        Reply(tool_calls=[ToolCall("end_call", {})]),
        "Bye Dana!",
    )
    async with Call(settings, brain=brain) as call:
        await call.say("That's all, thanks")
        await call.collector.wait_responses(2)
        assert "".join(call.collector.text) == "Bye Dana!"
        assert hung_up == [] and brain.ctx.pending_action()
        await brain.ctx.speech_finished()
    assert hung_up == ["pipeline hang-up"] and fake_twilio.requests == []
    sent = fake_openai.chat_requests[0]
    assert sent["messages"][1]["content"] == f"About the caller ({CALLER}), from earlier calls:\nName: Dana."
    assert [t["function"]["name"] for t in sent["tools"]] == default_registry().names
    assert [r["name"] for r in brain.ctx.take_records()] == ["end_call"]
