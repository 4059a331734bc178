"""Which rules fire: rules are tried in order; non-terminal actions (sms, persona, tag) let the
later rules be tried too, the first terminal one (transfer, voicemail, hang_up, reject) ends the list.

Two stages: ``incoming_matches`` at ``/phone/incoming`` (rules on time and caller only) and
``event_matches`` during the call, for one event: a sentence, an intent the LLM reported, a digit,
or one more turn the agent did not understand. In a call each rule fires at most once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from phone_agent.brain.routing.rules import Conditions, Rule
from phone_agent.config import Settings
from phone_agent.opening_hours import parse_closed_days, parse_hours

EventKind = Literal["text", "intent", "digit", "misunderstood"]


@dataclass(frozen=True)
class CallFacts:
    """What is known about a call before anyone speaks."""

    now: datetime
    caller: str | None  # E.164, None when withheld
    returning: bool = False


@dataclass(frozen=True)
class CallEvent:
    """Something that happened in the call: ``value`` is the sentence, intent or digit; for
    ``misunderstood`` the number of turns not understood so far."""

    kind: EventKind
    value: str = ""
    count: int = 0


def hours_now(settings: Settings, now: datetime) -> set[str]:
    """The time conditions true at ``now``: {'open'}, {'after_hours'} or {'after_hours', 'closed_day'}."""
    tz = ZoneInfo(settings.timezone)
    local = now.astimezone(tz)
    if local.date() in parse_closed_days(settings.closed_days):
        return {"after_hours", "closed_day"}
    return {"open"} if parse_hours(settings.business_hours).is_open(local, 0, tz) else {"after_hours"}


def before_call_holds(conditions: Conditions, settings: Settings, facts: CallFacts) -> bool:
    """True when the time and caller conditions hold."""
    if conditions.hours and conditions.hours not in hours_now(settings, facts.now):
        return False
    caller = facts.caller or ""
    if conditions.numbers and caller not in conditions.numbers:
        return False
    if conditions.prefixes and not any(caller.startswith(p) for p in conditions.prefixes):
        return False
    if conditions.caller == "new" and facts.returning:
        return False
    return not (conditions.caller == "returning" and not facts.returning)


def says(text: str, phrase: str) -> bool:
    """True when ``phrase`` appears in ``text`` as whole words (case and spacing ignored)."""
    words = " ".join(re.findall(r"[\w']+", text.lower()))
    wanted = " ".join(re.findall(r"[\w']+", phrase.lower()))
    return bool(wanted) and re.search(rf"(?<![\w']){re.escape(wanted)}(?![\w'])", words) is not None


def event_holds(conditions: Conditions, event: CallEvent) -> bool:
    """True when the in-call condition of a rule is met by ``event``."""
    if event.kind == "text":
        return any(says(event.value, k) for k in conditions.keywords)
    if event.kind == "intent":
        wanted = " ".join(event.value.lower().split())
        return wanted in conditions.intents
    if event.kind == "digit":
        return bool(conditions.digit) and conditions.digit == event.value
    return 0 < conditions.misunderstood_turns <= event.count


def _until_terminal(rules: Iterable[Rule]) -> list[Rule]:
    fired = []
    for rule in rules:
        fired.append(rule)
        if rule.action.terminal:
            break
    return fired


def incoming_matches(rules: Iterable[Rule], settings: Settings, facts: CallFacts) -> list[Rule]:
    """Rules on time and caller that fire for a call ringing now, in order (see the module doc)."""
    return _until_terminal(
        r
        for r in rules
        if r.enabled and not r.conditions.in_call() and before_call_holds(r.conditions, settings, facts)
    )


def event_matches(
    rules: Iterable[Rule],
    settings: Settings,
    facts: CallFacts,
    event: CallEvent,
    *,
    already: Iterable[int] = (),
) -> list[Rule]:
    """In-call rules that fire on ``event`` (none of those in ``already``), in order."""
    done = set(already)
    return _until_terminal(
        r
        for r in rules
        if r.enabled
        and r.id not in done
        and r.conditions.in_call()
        and event_holds(r.conditions, event)
        and before_call_holds(r.conditions, settings, facts)
    )


def intents_of(rules: Iterable[Rule]) -> list[str]:
    """Every intent an enabled rule listens for (what the ``route_call`` tool offers the LLM)."""
    found: dict[str, None] = {}
    for rule in rules:
        if rule.enabled:
            found.update(dict.fromkeys(rule.conditions.intents))
    return list(found)


def listens_for_misunderstanding(rules: Iterable[Rule]) -> bool:
    """True when an enabled rule counts turns the agent did not understand."""
    return any(r.enabled and r.conditions.misunderstood_turns for r in rules)
