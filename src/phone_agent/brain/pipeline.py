"""The brain inside the call's Pipecat pipeline: the LLM chain as a Pipecat LLM service, plus tools.

``build_pipeline_llm(settings, caller=..., memory=...)`` returns ``ChainedLLMService``: Pipecat's
own ``OpenAILLMService`` (its context handling, streaming, metrics, function calling, interruption
handling) with two things of the brain's in ``get_chat_completions``:

- the prompt is packed like ``/v1/chat``'s (``packer.pack_prompt``): persona and clock, the caller's
  memory, knowledge found for this turn, and the conversation inside ``llm_context_tokens``. So do
  not give the LLMContext a persona system message: the packer adds it (any system messages in the
  context are appended to it as extra instructions).
- the completion is opened through ``LLMChain``: the secondary on a 5xx, a connection error or no
  first token in ``llm_first_token_timeout``, and the canned "can I take a message?" reply when both
  are down. On the phone (``on_exhausted`` given) that last reply is ``exhausted_reply`` (an
  apology) and ``on_exhausted`` hands the call to the fallback action: never the same canned line
  turn after turn.

Why not Pipecat's ``ServiceSwitcher`` with ``ServiceSwitcherStrategyFailover`` here (it is used for
TTS): it switches only after a service has reported itself unusable, it does not replay the
request that failed (the caller would hear nothing for that turn), and it has no first-token
timeout. Failing over inside one ``get_chat_completions`` keeps the turn alive.

``register_tools(llm, registry, ctx)`` maps the tool registry onto Pipecat function calling
(``llm.register_function``) and returns the ``ToolsSchema`` to put in the ``LLMContext``. The
per-turn limit applies: past ``llm_max_tool_calls`` a call gets an error result, and a model that
still insists is cut off with the canned reply. The voice pipeline must call
``ctx.speech_finished()`` when the agent's audio has finished playing (``end_call`` and
``transfer_call`` wait for it), and store ``ctx.take_records()`` with the agent turn.

``build_call_brain(ctx, chain=..., caller=...)`` puts it all together for one call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from openai import AsyncOpenAI
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    FunctionCallResultProperties,
    InterruptionFrame,
    TTSSpeakFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import FunctionCallFromLLM, FunctionCallParams, LLMService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.types import assert_given

from phone_agent.brain.agent import CUT_OFF_REPLY, last_user_text
from phone_agent.brain.llm import ChainStream, LLMChain
from phone_agent.brain.packer import pack_prompt
from phone_agent.brain.tools import Tool, ToolContext, ToolRegistry, limit_error
from phone_agent.config import Settings
from phone_agent.memory.base import CallerContext, KnowledgeHit, MemoryStore
from phone_agent.storage.tables import utcnow

KNOWLEDGE_TIMEOUT = 0.3  # seconds the knowledge search may add to a turn on the phone
EXTRA_CALLS_BEFORE_CUT_OFF = 2  # refused calls tolerated past the limit before the turn is cut off


SPECULATIVE_TOOL_WAIT_SECS = 5.0  # longest wait for the verdict on a turn with an early tool call


class ChainedLLMService(OpenAILLMService):
    """Pipecat's OpenAI LLM service; prompts packed by the brain, completions opened through the chain."""

    def __init__(
        self,
        *,
        chain: LLMChain,
        settings: Settings,
        caller: CallerContext | None = None,
        memory: MemoryStore | None = None,
        on_exhausted: Callable[[str], Awaitable[None]] | None = None,
        exhausted_reply: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.chain = chain  # before Pipecat's __init__, which calls create_client()
        self.on_exhausted, self.exhausted_reply = on_exhausted, exhausted_reply
        super().__init__(
            api_key=settings.secret("openai_api_key") or "not-set",
            base_url=settings.llm_base_url,
            settings=OpenAILLMService.Settings(model=chain.model, temperature=settings.llm_temperature),
            **kwargs,
        )
        self.app_settings = settings
        self.caller = caller
        self.memory = memory
        self.last_stream: ChainStream | None = None
        self._held_exhaustion: str | None = None  # the chain failed a reply not confirmed yet
        self.call_instructions = ""  # this call's own brief (e.g. an outbound call's purpose)

    def create_client(self, *_args: Any, **_kwargs: Any) -> AsyncOpenAI:
        """One-shot inferences (``run_inference``) use the chain's primary client: no client per call."""
        return self.chain.endpoints[0].client

    async def get_chat_completions(self, context: LLMContext) -> Any:
        """Build the request as Pipecat does, pack it, then let the chain pick the endpoint."""
        adapter = self.get_llm_adapter()
        params_from_context = await adapter.get_llm_invocation_params(
            context,
            system_instruction=assert_given(getattr(self.settings, "system_instruction", None)),
            convert_developer_to_user=not self.supports_developer_role,
        )
        params = self.build_chat_completion_params(params_from_context)
        params["messages"] = await self.pack_messages(list(params["messages"]))
        self.last_stream = await self.chain.stream(canned_text=self.exhausted_reply, **params)
        if self.last_stream.canned and self.on_exhausted is not None:
            detail = "; ".join(self.last_stream.failures) or "no LLM answered"
            if self._speculation_gate.is_speculating:
                # a reply prepared before the turn was confirmed (voice/turn_end.py): the apology
                # is held with it, and the rescue starts only if the turn is confirmed
                self._held_exhaustion = detail
            else:
                await self.on_exhausted(detail)
        return self.last_stream

    async def run_function_calls(self, function_calls: Sequence[FunctionCallFromLLM]) -> None:
        """A tool call in a reply requested before the caller's turn was confirmed waits for the
        verdict: confirmed → it runs (one request, as for any turn); withdrawn (the caller went on)
        → dropped. Pipecat withdraws it at once, so every tool turn cost a second request that the
        model could answer differently (and a replayed request for a tool with side effects)."""
        gate = self._speculation_gate
        if function_calls and gate.is_speculating:
            deadline = time.monotonic() + SPECULATIVE_TOOL_WAIT_SECS
            while gate.is_speculating and time.monotonic() < deadline:  # noqa: ASYNC110 (the gate has no event)
                await asyncio.sleep(0.01)
            if not gate.is_speculating and not gate._turn_ended:
                return  # withdrawn: the request that answers the whole turn decides again
        await super().run_function_calls(function_calls)  # (still unconfirmed: Pipecat withdraws it)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._held_exhaustion is None:
            return
        if isinstance(frame, UserStoppedSpeakingFrame):  # the held apology was just released
            detail, self._held_exhaustion = self._held_exhaustion, None
            if self.on_exhausted is not None:
                await self.on_exhausted(detail)
        elif isinstance(frame, (EagerEndOfTurnCancelFrame, InterruptionFrame)):
            self._held_exhaustion = None  # withdrawn: the confirmed turn asks again

    async def pack_messages(self, messages: list[Any]) -> list[dict[str, Any]]:
        """Persona, caller memory, knowledge for this turn and the conversation, inside the budget."""
        system = [m for m in messages if m.get("role") in ("system", "developer")]
        history = [m for m in messages if m.get("role") not in ("system", "developer")]
        knowledge: list[KnowledgeHit] = []
        query = last_user_text(history)
        if self.memory is not None and query.strip():
            try:
                knowledge = await asyncio.wait_for(self.memory.search_knowledge(query), KNOWLEDGE_TIMEOUT)
            except Exception as exc:  # the reply must not wait on the knowledge base
                logger.warning("knowledge search skipped for this turn: {}", type(exc).__name__)
        packed = pack_prompt(
            self.app_settings,
            history,
            caller=self.caller,
            knowledge=knowledge,
            now=utcnow(),
            extra_instructions="\n".join(
                [self.call_instructions, *(str(m.get("content") or "") for m in system)]
            ).strip(),
        )
        return packed.messages


def build_pipeline_llm(
    settings: Settings,
    *,
    caller: CallerContext | None = None,
    memory: MemoryStore | None = None,
    chain: LLMChain | None = None,
    on_exhausted: Callable[[str], Awaitable[None]] | None = None,
    exhausted_reply: str | None = None,
) -> ChainedLLMService:
    """The call pipeline's LLM processor (in place of a bare ``OpenAILLMService``).

    Args:
        settings: the call's settings (persona, LLM endpoints, budget).
        caller: what memory knows about the caller (``memory.fetch_caller_context``), if any.
        memory: the store searched for knowledge on every turn (bounded by ``KNOWLEDGE_TIMEOUT``).
        chain: an existing chain to share (default: one built from ``settings``).
        on_exhausted: called (with what failed) when no endpoint answered a turn; must not block.
        exhausted_reply: what the agent says then (default: the chain's canned reply).
    """
    return ChainedLLMService(
        chain=chain or LLMChain.from_settings(settings),
        settings=settings,
        caller=caller,
        memory=memory,
        on_exhausted=on_exhausted,
        exhausted_reply=exhausted_reply,
    )


def tools_schema(registry: ToolRegistry) -> ToolsSchema:
    """The registry as Pipecat's ToolsSchema (for ``LLMContext(tools=...)``)."""
    functions = []
    for name in registry.names:
        tool = registry.get(name)
        assert tool is not None
        parameters = tool.parameters()
        functions.append(
            FunctionSchema(
                name=tool.name,
                description=tool.description,
                properties=parameters.get("properties", {}),
                required=parameters.get("required", []),
            )
        )
    return ToolsSchema(standard_tools=functions)


class _TurnCounter:
    """Tool calls in the current caller turn (a new user message in the context starts a turn)."""

    def __init__(self) -> None:
        self.user_messages = -1
        self.calls = 0

    def count(self, context: LLMContext) -> int:
        users = sum(1 for m in context.get_messages() if isinstance(m, dict) and m.get("role") == "user")
        if users != self.user_messages:
            self.user_messages, self.calls = users, 0
        self.calls += 1
        return self.calls


def register_tools(llm: LLMService[Any], registry: ToolRegistry, ctx: ToolContext) -> ToolsSchema:
    """Register every tool's handler on ``llm``; returns the schema to advertise in the context."""
    counter = _TurnCounter()
    limit = ctx.settings.llm_max_tool_calls

    def handler_for(tool: Tool) -> Any:
        async def handle(params: FunctionCallParams) -> None:
            calls = counter.count(params.context)
            if calls > limit + EXTRA_CALLS_BEFORE_CUT_OFF:
                # The model keeps calling tools: stop asking it, say the canned line instead.
                await params.result_callback(
                    {"ok": False, "error": limit_error(ctx.settings)},
                    properties=FunctionCallResultProperties(run_llm=False),
                )
                await params.llm.push_frame(TTSSpeakFrame(CUT_OFF_REPLY))
                return
            if calls > limit:
                await params.result_callback({"ok": False, "error": limit_error(ctx.settings)})
                return
            # its own task: an interruption or a hang-up cancels this handler, never the tool's writes
            result = await ctx.run_to_completion(
                registry.run(tool.name, dict(params.arguments), ctx, call_id=params.tool_call_id)
            )
            await params.result_callback(json.loads(result.content()))

        return handle

    for name in registry.names:
        tool = registry.get(name)
        assert tool is not None
        llm.register_function(tool.name, handler_for(tool))
    return tools_schema(registry)


@dataclass
class CallBrain:
    """Everything the brain puts into one call's pipeline.

    ``llm`` goes where the LLM processor goes; ``tools`` into ``LLMContext(tools=...)``; ``ctx``
    is the call's tool state: call ``await ctx.speech_finished()`` when the agent's audio has
    finished playing, and store ``ctx.take_records()`` with each agent turn.
    """

    llm: ChainedLLMService
    tools: ToolsSchema
    ctx: ToolContext


def build_call_brain(
    ctx: ToolContext,
    *,
    chain: LLMChain,
    caller: CallerContext | None,
    registry: ToolRegistry | None = None,
    on_exhausted: Callable[[str], Awaitable[None]] | None = None,
    exhausted_reply: str | None = None,
) -> CallBrain:
    """The brain of one phone call: the LLM processor on ``chain`` and the tools acting through ``ctx``.

    Args:
        ctx: the call's tool context (``Services.tool_context``): its settings, database, call control
            and memory are the call's for its whole life, whatever the admin changes meanwhile.
        chain: the LLM chain of the same ``Services``.
        caller: the caller's context from memory (``memory.calls.fetch_caller_context``), if any.
        registry: the tools (default: the built-ins).
        on_exhausted: called (with what failed) when no LLM endpoint answered a turn; must not block.
        exhausted_reply: what the agent says then, instead of the chain's canned reply.
    """
    from phone_agent.brain.builtins import default_registry

    llm = build_pipeline_llm(
        ctx.settings,
        caller=caller,
        memory=ctx.memory,
        chain=chain,
        on_exhausted=on_exhausted,
        exhausted_reply=exhausted_reply,
    )
    tools = register_tools(llm, registry or default_registry(), ctx)
    return CallBrain(llm=llm, tools=tools, ctx=ctx)
