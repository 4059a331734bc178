"""Routing at ``/phone/incoming``: rules on time and caller, before any stream or provider is used.

A terminal rule answers Twilio's webhook with its TwiML (reject, transfer, voicemail, message and
hang-up); non-terminal rules tag the call, send their SMS or leave a persona for the stream to
take (``persona_of``). Every rule that fired is noted on the call's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.brain.routing.actions import action_twiml, send_rule_sms, transfer_reason
from phone_agent.brain.routing.match import CallFacts, incoming_matches
from phone_agent.brain.routing.rules import Rule, load_rule
from phone_agent.config import Settings
from phone_agent.storage.routing import is_returning, list_rules, record_routing, routing_events
from phone_agent.telephony.control import CallControl


async def active_rules(sessions: async_sessionmaker[AsyncSession]) -> list[Rule]:
    """The enabled rules in order (a stored rule that no longer validates is skipped and logged)."""
    rules = []
    for row in await list_rules(sessions, enabled_only=True):
        rule = load_rule(row)
        if rule is None:
            logger.warning("routing rule {} ({!r}) is not valid any more: skipped", row.id, row.name)
        else:
            rules.append(rule)
    return rules


async def route_incoming(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    control: CallControl,
    *,
    call_sid: str,
    caller: str | None,
    now: datetime,
    repeated: bool = False,
) -> str | None:
    """Run the time and caller rules for a ringing call; the TwiML to answer with when a terminal rule
    fired (None: connect the agent). ``repeated``: a retried webhook, answered alike with no effects."""
    rules = await active_rules(sessions)
    if not rules:
        return None
    facts = CallFacts(now=now, caller=caller, returning=await is_returning(sessions, caller, call_sid))
    local = now.astimezone(ZoneInfo(settings.timezone))
    detail = f"caller {caller or 'withheld'} at {local:%a %H:%M}"
    twiml = None
    for rule in incoming_matches(rules, settings, facts):
        action = rule.action
        logger.info("routing rule {!r} fired at /phone/incoming: {}", rule.name, action.summary())
        if action.terminal:
            twiml = action_twiml(settings, rule, reason=transfer_reason(rule, detail))
        if repeated:
            continue
        if action.type == "sms":
            await send_rule_sms(settings, control, rule, caller)
        await record_routing(
            sessions,
            call_sid=call_sid,
            event=rule.event("incoming", detail),
            tag=action.tag if action.type == "tag" else None,
            end_reason=f"routed → {action.type}" if action.terminal else None,
        )
    return twiml


def persona_of(events: list[dict[str, object]], rules: list[Rule]) -> str | None:
    """The instructions a persona rule that fired at ``/phone/incoming`` gave the call, if any."""
    by_id = {rule.id: rule for rule in rules}
    for event in reversed(events):
        rule_id = event.get("rule_id")
        rule = by_id.get(rule_id) if isinstance(rule_id, int) else None
        if event.get("action") == "persona" and rule is not None and rule.action.type == "persona":
            return rule.action.text
    return None


@dataclass(frozen=True)
class CallRouting:
    """What a starting call needs of routing: rules, what fired at /phone/incoming, caller history."""

    rules: list[Rule]
    events: list[dict[str, object]]
    returning: bool


async def call_routing(
    sessions: async_sessionmaker[AsyncSession], *, call_sid: str, caller: str | None
) -> CallRouting:
    """Read once when the call's stream starts (rules edited later apply to the next call)."""
    rules = await active_rules(sessions)
    if not rules:
        return CallRouting([], [], False)
    events = await routing_events(sessions, call_sid)
    return CallRouting(rules, events, await is_returning(sessions, caller, call_sid))
