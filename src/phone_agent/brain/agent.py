"""One agent turn over HTTP: pack the prompt, stream the LLM chain, run tools, repeat until it speaks.

Used by ``/v1/chat`` and ``/v1/chat/completions``. (The phone pipeline runs the same pieces inside
Pipecat: see ``brain/pipeline.py``.) At most ``llm_max_tool_calls`` tool calls run in one turn;
past that each further call gets an error result and the model is asked to answer without tools.
Calls to tools the HTTP client declared itself (``external_tools``) are not run here: the turn
stops and hands them back, as the OpenAI API does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from phone_agent.brain.llm import LLMChain
from phone_agent.brain.packer import Message, pack_prompt
from phone_agent.brain.tools import ToolContext, ToolRegistry, limit_error, tool_calls_this_turn
from phone_agent.memory.base import CallerContext, KnowledgeHit, MemoryStore

TextSink = Callable[[str], Awaitable[None]]
MEMORY_TIMEOUT = 1.0  # seconds; a slow memory store must not hold up the reply
CUT_OFF_REPLY = "Sorry, I couldn't finish that. Can I take a message so someone can call you back?"


@dataclass
class TurnResult:
    """The outcome of one turn."""

    text: str = ""
    finish_reason: str = "stop"  # stop | tool_calls (external tools handed back)
    external_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_records: list[dict[str, Any]] = field(default_factory=list)
    new_messages: list[Message] = field(default_factory=list)  # assistant/tool messages of this turn
    prompt_tokens: int = 0
    completion_tokens: int = 0
    provider: str = ""
    ended: bool = False
    end_reason: str | None = None


class Agent:
    """The brain for HTTP conversations: chain + tools + memory."""

    def __init__(self, chain: LLMChain, registry: ToolRegistry, memory: MemoryStore | None = None) -> None:
        self.chain = chain
        self.registry = registry
        self.memory = memory

    async def recall(self, phone: str | None, query: str) -> tuple[CallerContext | None, list[KnowledgeHit]]:
        """Caller context and knowledge for this turn (empty when memory is off or failing)."""
        if self.memory is None:
            return None, []
        caller: CallerContext | None = None
        hits: list[KnowledgeHit] = []
        try:
            if phone:
                caller = await asyncio.wait_for(self.memory.caller_context(phone), MEMORY_TIMEOUT)
            if query.strip():
                hits = await asyncio.wait_for(self.memory.search_knowledge(query), MEMORY_TIMEOUT)
        except Exception as exc:  # memory is helpful, never required to answer
            logger.warning("memory unavailable for this turn: {}", type(exc).__name__)
        return caller, hits

    async def run_turn(
        self,
        history: Sequence[Message],
        ctx: ToolContext,
        *,
        extra_instructions: str = "",
        external_tools: Sequence[dict[str, Any]] = (),
        on_text: TextSink | None = None,
        sampling: dict[str, Any] | None = None,
    ) -> TurnResult:
        """Answer the last user message of ``history`` (OpenAI-form messages, oldest first).

        ``sampling`` holds request options passed to the LLM as given (temperature, max_tokens, ...).
        """
        settings = ctx.settings
        caller, knowledge = await self.recall(ctx.caller_phone, last_user_text(history))
        if caller is not None and caller.name and not ctx.caller_name:
            ctx.caller_name = caller.name
        external_names = {t.get("function", {}).get("name") for t in external_tools}
        tools = self.registry.openai_tools() + list(external_tools)
        result = TurnResult()
        messages: list[Message] = list(history)
        final_text = ""
        for _round in range(settings.llm_max_tool_calls + 2):
            limit_hit = tool_calls_this_turn(messages) >= settings.llm_max_tool_calls
            packed = pack_prompt(
                settings,
                messages,
                caller=caller,
                knowledge=knowledge,
                now=ctx.now(),
                extra_instructions=extra_instructions,
            )
            params: dict[str, Any] = {**(sampling or {}), "messages": packed.messages}
            if tools:
                params |= {"tools": tools, "tool_choice": "none" if limit_hit else "auto"}
            text, calls = await self._complete(params, result, on_text)
            result.text += text
            final_text = text
            if not calls:
                break
            if limit_hit:  # the model ignored tool_choice=none: cut the loop off here
                logger.warning("tool loop cut off after {} calls", settings.llm_max_tool_calls)
                if not result.text:
                    result.text = final_text = CUT_OFF_REPLY
                    if on_text:
                        await on_text(CUT_OFF_REPLY)
                break
            assistant: Message = {"role": "assistant", "content": text or None, "tool_calls": calls}
            external = [c for c in calls if c["function"]["name"] in external_names]
            if external:
                result.finish_reason, result.external_tool_calls = "tool_calls", external
                result.new_messages.append({**assistant, "tool_calls": external})
                break
            messages.append(assistant)
            result.new_messages.append(assistant)
            for call in calls:
                if tool_calls_this_turn(messages) >= settings.llm_max_tool_calls:
                    content = json.dumps({"ok": False, "error": limit_error(settings)})
                else:
                    outcome = await self.registry.run(
                        call["function"]["name"], call["function"]["arguments"], ctx, call_id=call["id"]
                    )
                    content = outcome.content()
                tool_message = {"role": "tool", "tool_call_id": call["id"], "content": content}
                messages.append(tool_message)
                result.new_messages.append(tool_message)
        if final_text and result.finish_reason == "stop":
            result.new_messages.append({"role": "assistant", "content": final_text})
        result.tool_records = ctx.take_records()
        result.ended, result.end_reason = ctx.ended, ctx.end_reason
        return result

    async def _complete(
        self, params: dict[str, Any], result: TurnResult, on_text: TextSink | None
    ) -> tuple[str, list[dict[str, Any]]]:
        """Stream one completion: text goes to ``on_text`` as it comes; tool calls are assembled."""
        stream = await self.chain.stream(**params)
        result.provider = stream.provider
        text = ""
        calls: dict[int, dict[str, Any]] = {}
        try:
            async for chunk in stream:
                if chunk.usage:
                    result.prompt_tokens += chunk.usage.prompt_tokens
                    result.completion_tokens += chunk.usage.completion_tokens
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text += delta.content
                        if on_text:
                            await on_text(delta.content)
                    for piece in delta.tool_calls or ():
                        call = calls.setdefault(
                            piece.index,
                            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                        )
                        call["id"] = piece.id or call["id"]
                        if piece.function:
                            call["function"]["name"] += piece.function.name or ""
                            call["function"]["arguments"] += piece.function.arguments or ""
        finally:
            await stream.close()
        if stream.canned:
            result.completion_tokens += len(text) // 4
        return text, [calls[i] for i in sorted(calls)]


def last_user_text(history: Sequence[Message]) -> str:
    """Text of the caller's latest message."""
    for message in reversed(history):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
