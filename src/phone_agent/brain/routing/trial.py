"""The admin's "Test a rule": a time, a number, a sentence (and a key) → the rules that would fire.

The same matching as a real call: the time and caller rules of ``/phone/incoming`` first; when none
of them answered the call, the in-call rules for the key pressed and for the sentence, by its
keywords and by the intent the LLM recognises in it (the ``route_call`` tool alone, so testing runs
no other tool). Nothing is recorded and nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from phone_agent.brain.agent import Agent
from phone_agent.brain.llm import LLMChain
from phone_agent.brain.routing.match import CallEvent, CallFacts, event_matches, incoming_matches, intents_of
from phone_agent.brain.routing.rules import Rule
from phone_agent.brain.routing.tool import route_call_tool
from phone_agent.brain.tools import ToolContext, ToolRegistry
from phone_agent.config import Settings


@dataclass
class Step:
    """One rule that would fire, where, and why."""

    stage: str  # "when the call rings" | "during the call"
    rule: str
    action: str
    why: str


@dataclass
class TrialResult:
    """What would happen to the test call."""

    steps: list[Step] = field(default_factory=list)
    intent: str | None = None  # what the LLM recognised in the sentence
    notes: list[str] = field(default_factory=list)

    @property
    def fired(self) -> str | None:
        """Name of the last rule that fired (what the call's row would show), None for none."""
        return self.steps[-1].rule if self.steps else None


async def recognise_intent(
    chain: LLMChain, settings: Settings, rules: list[Rule], sentence: str
) -> str | None:
    """The intent the LLM hears in ``sentence`` (one of the rules'), None when none or no LLM answered."""
    intents = intents_of(rules)
    if not intents or not sentence.strip():
        return None
    heard: list[str] = []

    async def note(intent: str) -> dict[str, Any]:
        heard.append(intent)
        return {"status": "noted"}

    ctx = ToolContext(settings=settings, channel="chat", on_intent=note)
    agent = Agent(chain, ToolRegistry([route_call_tool(intents, unclear=False)]))
    try:
        await agent.run_turn([{"role": "user", "content": sentence}], ctx)
    except Exception as exc:  # a test must answer even when the LLM cannot
        logger.warning("routing test: the LLM could not judge the intent ({})", type(exc).__name__)
    return heard[0] if heard else None


async def trial(
    settings: Settings,
    rules: list[Rule],
    *,
    when: datetime,
    caller: str | None,
    returning: bool,
    sentence: str = "",
    digit: str = "",
    intent: str | None = None,
) -> TrialResult:
    """Which rules fire for this test call (``intent``: what the LLM recognised in the sentence)."""
    result = TrialResult(intent=intent)
    facts = CallFacts(now=when, caller=caller, returning=returning)
    for rule in incoming_matches(rules, settings, facts):
        result.steps.append(
            Step("when the call rings", rule.name, rule.action.summary(), rule.conditions.summary())
        )
        if rule.action.terminal:
            result.notes.append("The call is answered by this rule: the agent never picks up.")
            return result
    fired: list[int] = []
    events = [CallEvent("digit", digit)] if digit else []
    events += [CallEvent("text", sentence)] if sentence.strip() else []
    events += [CallEvent("intent", intent)] if intent else []
    for event in events:
        for rule in event_matches(rules, settings, facts, event, already=fired):
            fired.append(rule.id)
            why = {"digit": f"pressed {digit}", "text": "keyword heard", "intent": f"intent “{intent}”"}
            result.steps.append(Step("during the call", rule.name, rule.action.summary(), why[event.kind]))
            if rule.action.terminal:
                return result
    if not result.steps:
        result.notes.append("No rule fires: the agent takes the call.")
    return result
