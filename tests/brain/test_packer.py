"""Prompt packer: exact messages for a given budget; persona never dropped; deterministic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from phone_agent.brain.packer import estimate_tokens, message_tokens, messages_tokens, pack_prompt
from phone_agent.brain.persona import persona_prompt
from phone_agent.memory.base import CallerContext, KnowledgeHit, MemoryItem
from tests.conftest import make_settings

NOW = datetime(2026, 11, 30, 15, 5, tzinfo=UTC)  # a Monday, 10:05 in New York


def _settings(tmp_path: Path):
    return make_settings(
        tmp_path,
        PHONE_AGENT_AGENT_NAME="Ava",
        PHONE_AGENT_BUSINESS_NAME="Bright Dental",
        PHONE_AGENT_INSTRUCTIONS="Be brief.",
        PHONE_AGENT_BUSINESS_FACTS="Parking behind the building.",
    )


def _history() -> list[dict]:
    return [
        {"role": "user", "content": "Hi, do you do cleanings on Saturdays for the whole family?"},
        {
            "role": "assistant",
            "content": "We are closed on Saturdays, but we are open Monday to Friday from nine to five, "
            "and we can see the whole family back to back on the same morning.",
        },
        {"role": "user", "content": "What about Friday?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_caller", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'},
        {"role": "assistant", "content": "Friday works."},
        {"role": "user", "content": "Book me at ten please."},
    ]


PERSONA_TAIL = "\nNow it is Monday 30 November 2026, 10:05 (America/New_York)."


def test_estimate_is_four_characters_a_token_plus_framing() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert message_tokens({"role": "user", "content": "abcdefgh"}) == 4 + 2


def test_everything_fits(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    caller = CallerContext(
        phone="+15551234567",
        name="Dana",
        known=True,
        memories=[MemoryItem(content="Prefers mornings"), MemoryItem(content="Has a dog called Rex")],
    )
    hits = [KnowledgeHit(document_id=1, title="Prices", text="A cleaning costs $90. ", score=0.9)]
    packed = pack_prompt(settings, _history(), caller=caller, knowledge=hits, now=NOW, budget=10_000)
    assert packed.messages == [
        {
            "role": "system",
            "content": "You are Ava, the phone receptionist of Bright Dental.\nBe brief.\n"
            "Business hours: Mon-Fri 09:00-17:00 (America/New_York).\n"
            "Business facts:\nParking behind the building." + PERSONA_TAIL,
        },
        {
            "role": "system",
            "content": "About the caller (+15551234567), from earlier calls:\nName: Dana.\n"
            "- Prefers mornings\n- Has a dog called Rex",
        },
        {
            "role": "system",
            "content": "Knowledge base excerpts for this question (quote them; say so if they do not "
            "answer it):\n[Prices] A cleaning costs $90.",
        },
        *_history(),
    ]
    assert packed.dropped_turns == 0 and packed.tokens == messages_tokens(packed.messages)


def test_tight_budget_summarises_oldest_turns_and_keeps_persona(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    history = _history()
    persona = {"role": "system", "content": persona_prompt(settings) + PERSONA_TAIL}
    summary = {
        "role": "system",
        "content": "Summary of the earlier conversation (older turns left out): the caller said "
        '"Hi, do you do cleanings on Saturdays for the whole family?".',
    }
    # Room for the persona, the last two exchanges and a summary, not for the first exchange.
    budget = messages_tokens([persona, summary, *history[2:]])
    packed = pack_prompt(settings, history, now=NOW, budget=budget)
    assert packed.messages == [persona, summary, *history[2:]]
    assert packed.dropped_turns == 1 and packed.tokens == budget
    # One token less: the exchange with the tool call goes too, whole (never a call without its result).
    tighter = pack_prompt(settings, history, now=NOW, budget=budget - 1)
    assert [m["role"] for m in tighter.messages] == ["system", "system", "user"]
    assert tighter.messages[1]["content"].endswith(
        '"Hi, do you do cleanings on Saturdays for the whole family?"; then "What about Friday?".'
    )


def test_tool_call_stays_with_its_result_and_current_turn_always_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    history = _history()
    # A budget smaller than the persona: nothing optional survives, but persona + current turn do.
    packed = pack_prompt(settings, history, now=NOW, budget=10)
    persona = {"role": "system", "content": persona_prompt(settings) + PERSONA_TAIL}
    assert packed.messages == [persona, history[-1]]
    assert packed.dropped_turns == 2


def test_memories_and_knowledge_dropped_from_the_end_when_tight(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    caller = CallerContext(
        phone="+15551234567",
        name="Dana",
        memories=[MemoryItem(content="Prefers mornings"), MemoryItem(content="x" * 400)],
    )
    hits = [
        KnowledgeHit(document_id=1, title="Prices", text="A cleaning costs $90."),
        KnowledgeHit(document_id=2, title="Long", text="y" * 800),
    ]
    current = [{"role": "user", "content": "How much is a cleaning?"}]
    persona = {"role": "system", "content": persona_prompt(settings)}
    caller_msg = {
        "role": "system",
        "content": "About the caller (+15551234567), from earlier calls:\nName: Dana.\n- Prefers mornings",
    }
    knowledge_msg = {
        "role": "system",
        "content": "Knowledge base excerpts for this question (quote them; say so if they do not "
        "answer it):\n[Prices] A cleaning costs $90.",
    }
    budget = messages_tokens([persona, caller_msg, knowledge_msg, *current]) + 20
    packed = pack_prompt(settings, current, caller=caller, knowledge=hits, budget=budget)
    assert packed.messages == [persona, caller_msg, knowledge_msg, *current]
    assert (packed.dropped_memories, packed.dropped_knowledge) == (1, 1)


def test_client_system_messages_join_the_persona_and_packing_is_deterministic(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    history = [{"role": "system", "content": "ignored here"}, {"role": "user", "content": "Hello"}]
    first = pack_prompt(settings, history, extra_instructions="Answer in French.", budget=2000)
    second = pack_prompt(settings, history, extra_instructions="Answer in French.", budget=2000)
    assert first == second
    assert first.messages == [
        {"role": "system", "content": persona_prompt(settings) + "\nAnswer in French."},
        {"role": "user", "content": "Hello"},
    ]
