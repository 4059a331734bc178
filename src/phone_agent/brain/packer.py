"""The prompt packer: persona, caller memory, knowledge and the conversation inside a token budget.

The packed prompt is, in order:

1. ``system``: the persona (``persona_prompt``), the current local time and any instructions the
   client added. Never dropped, whatever the budget.
2. ``system``: what we know about the caller (name and profile always; memories while they fit).
3. ``system``: knowledge chunks retrieved for this turn, best first, each kept whole or dropped.
4. ``system``: a one-paragraph summary of the older turns that did not fit (only when some did not).
5. the conversation window: the newest exchanges that fit, oldest first. An exchange is a user
   message and everything after it up to the next user message (assistant text, tool calls and
   their results), so a tool call is never separated from its result. The current exchange (the
   last user message onwards) is always kept.

Packing is deterministic: the same inputs give the same messages. Token counts use a documented
estimate, not a tokenizer (``estimate_tokens``): about four characters a token plus four tokens
of framing per message, which is OpenAI's own rule of thumb and errs high for English text.
The summary is extractive (no LLM call on the live-call path): the first words of each dropped
caller message, newest last.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from phone_agent.brain.persona import clock_line, persona_prompt
from phone_agent.config import Settings
from phone_agent.memory.base import CallerContext, KnowledgeHit

Message = dict[str, Any]

MESSAGE_OVERHEAD_TOKENS = 4
SUMMARY_TOKENS = 120  # most tokens the summary of dropped turns may take
SUMMARY_WORDS_PER_TURN = 12


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``: ceil(characters / 4)."""
    return math.ceil(len(text) / 4)


def message_tokens(message: Message) -> int:
    """Estimated tokens of one chat message, including tool calls and framing."""
    tokens = MESSAGE_OVERHEAD_TOKENS + estimate_tokens(_text(message.get("content")))
    if message.get("tool_calls"):
        tokens += estimate_tokens(json.dumps(message["tool_calls"], sort_keys=True))
    return tokens


def messages_tokens(messages: Sequence[Message]) -> int:
    """Estimated tokens of a list of chat messages."""
    return sum(message_tokens(m) for m in messages)


@dataclass
class PackedPrompt:
    """The messages to send and what the budget cost (for logs and tests)."""

    messages: list[Message]
    tokens: int
    dropped_turns: int = 0
    dropped_memories: int = 0
    dropped_knowledge: int = 0
    notes: list[str] = field(default_factory=list)


def pack_prompt(
    settings: Settings,
    history: Sequence[Message],
    *,
    caller: CallerContext | None = None,
    knowledge: Sequence[KnowledgeHit] = (),
    now: datetime | None = None,
    extra_instructions: str = "",
    budget: int | None = None,
) -> PackedPrompt:
    """Build the LLM input for the next reply.

    Args:
        settings: persona, business facts, hours and the default budget (``llm_context_tokens``).
        history: the conversation so far in OpenAI message form, oldest first, without system
            messages; it normally ends with the caller's latest message (and, inside a tool loop,
            the tool calls and results that followed it).
        caller: profile and top memories of the caller, if known.
        knowledge: chunks retrieved for this turn, best first.
        now: the current time (local time is shown to the model so it can book "tomorrow at ten").
        extra_instructions: system text from the client (``/v1/chat/completions`` system messages).
        budget: token budget; defaults to ``settings.llm_context_tokens``.
    """
    budget = settings.llm_context_tokens if budget is None else budget
    system_parts = [persona_prompt(settings)]
    if now is not None:
        system_parts.append(clock_line(settings, now))
    if extra_instructions.strip():
        system_parts.append(extra_instructions.strip())
    persona: Message = {"role": "system", "content": "\n".join(system_parts)}

    exchanges = _exchanges([m for m in history if m.get("role") != "system"])
    current = exchanges.pop() if exchanges else []
    used = message_tokens(persona) + messages_tokens(current)
    packed = PackedPrompt(messages=[], tokens=0)

    caller_message, used = _caller_message(caller, budget, used, packed)
    knowledge_message, used = _knowledge_message(knowledge, budget, used, packed)

    # Keep the most recent older exchanges that fit together with a summary of the rest.
    remaining = budget - used
    kept: list[list[Message]] = []
    summary: Message | None = None
    for keep in range(len(exchanges), -1, -1):
        kept = exchanges[len(exchanges) - keep :]
        dropped = exchanges[: len(exchanges) - keep]
        summary = _summary(dropped, SUMMARY_TOKENS) if dropped else None
        cost = sum(messages_tokens(ex) for ex in kept) + (message_tokens(summary) if summary else 0)
        if cost <= remaining:
            break
    else:  # not even the summary fits: send a shorter one, or none
        summary = _summary(dropped, remaining) if dropped else None
    messages = [persona]
    if caller_message:
        messages.append(caller_message)
    if knowledge_message:
        messages.append(knowledge_message)
    if summary:
        messages.append(summary)
    packed.dropped_turns = sum(1 for ex in dropped for m in ex if m.get("role") == "user")
    for exchange in kept:
        messages.extend(exchange)
    messages.extend(current)
    packed.messages = messages
    packed.tokens = messages_tokens(messages)
    return packed


def _exchanges(history: Sequence[Message]) -> list[list[Message]]:
    """Split the conversation into exchanges, each starting at a user message."""
    exchanges: list[list[Message]] = []
    for message in history:
        if message.get("role") == "user" or not exchanges:
            exchanges.append([])
        exchanges[-1].append(dict(message))
    return exchanges


def _caller_message(
    caller: CallerContext | None, budget: int, used: int, packed: PackedPrompt
) -> tuple[Message | None, int]:
    if caller is None or not (caller.name or caller.profile or caller.memories):
        return None, used
    header = f"About the caller ({caller.phone}), from earlier calls:"
    memories = list(caller.memories)
    while True:
        trimmed = caller.model_copy(update={"memories": memories})
        message = {"role": "system", "content": f"{header}\n{trimmed.summary()}"}
        cost = message_tokens(message)
        if used + cost <= budget or not memories:
            break
        memories.pop()  # memories come best first: drop from the end
    packed.dropped_memories = len(caller.memories) - len(memories)
    if used + cost > budget:  # not even the name fits: the persona and the turn matter more
        packed.notes.append("caller context dropped")
        return None, used
    return message, used + cost


def _knowledge_message(
    knowledge: Sequence[KnowledgeHit], budget: int, used: int, packed: PackedPrompt
) -> tuple[Message | None, int]:
    header = "Knowledge base excerpts for this question (quote them; say so if they do not answer it):"
    lines: list[str] = []
    cost = message_tokens({"role": "system", "content": header})
    for hit in knowledge:
        line = f"[{hit.title}] {hit.text.strip()}"
        line_cost = estimate_tokens("\n" + line)
        if used + cost + line_cost > budget:
            packed.dropped_knowledge += 1
            continue
        lines.append(line)
        cost += line_cost
    if not lines:
        return None, used
    return {"role": "system", "content": "\n".join([header, *lines])}, used + cost


def _summary(dropped: list[list[Message]], tokens: int) -> Message | None:
    """An extractive summary of dropped exchanges: the start of what the caller said in each."""
    if tokens <= MESSAGE_OVERHEAD_TOKENS + 8:
        return None
    header = "Summary of the earlier conversation (older turns left out): the caller said"
    pieces = []
    for exchange in dropped:
        words = _text(exchange[0].get("content")).split()
        if exchange[0].get("role") == "user" and words:
            clipped = " ".join(words[:SUMMARY_WORDS_PER_TURN])
            pieces.append(f'"{clipped}{"…" if len(words) > SUMMARY_WORDS_PER_TURN else ""}"')
    # Keep the newest pieces when the summary itself is too long.
    while pieces:
        content = f"{header} {'; then '.join(pieces)}."
        if MESSAGE_OVERHEAD_TOKENS + estimate_tokens(content) <= tokens:
            return {"role": "system", "content": content}
        pieces.pop(0)
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
