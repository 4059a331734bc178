"""Routing rules: checked before they are stored; which rules fire for a call, a sentence, a digit,
an intent or misunderstandings (brain/routing/rules.py, match.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from phone_agent.brain.routing.match import (
    CallEvent,
    CallFacts,
    event_matches,
    hours_now,
    incoming_matches,
    intents_of,
    says,
)
from phone_agent.brain.routing.rules import Rule, check_rule
from phone_agent.config import Settings
from phone_agent.errors import ConfigError
from tests.conftest import make_settings

# Wed 2026-12-02 15:00 UTC = 10:00 in New York (open); 23:30 UTC = 18:30 (after hours)
OPEN = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
EVENING = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
CHRISTMAS = datetime(2026, 12, 25, 15, 0, tzinfo=UTC)  # a Friday, inside the hours, but closed


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        PHONE_AGENT_TRANSFER_DESTINATIONS="Claims=+15550100001; Sales=(555) 010-0002",
        PHONE_AGENT_CLOSED_DAYS="2026-12-25",
        PHONE_AGENT_BUSINESS_HOURS="Mon-Fri 09:00-17:00",
    )


def rule(settings: Settings, rule_id: int, conditions: dict, action: dict, name: str = "") -> Rule:
    checked, act = check_rule(settings, name=name or f"rule {rule_id}", conditions=conditions, action=action)
    return Rule(id=rule_id, name=name or f"rule {rule_id}", conditions=checked, action=act)


def test_settings_normalise_destinations_and_closed_days(settings: Settings) -> None:
    assert settings.destinations() == {"Claims": "+15550100001", "Sales": "+15550100002"}
    assert settings.closed_days == "2026-12-25"
    with pytest.raises(ConfigError, match="transfer_destinations"):
        make_settings(Path(settings.data_dir), PHONE_AGENT_TRANSFER_DESTINATIONS="Claims +1555")
    with pytest.raises(ConfigError, match="closed_days"):
        make_settings(Path(settings.data_dir), PHONE_AGENT_CLOSED_DAYS="25/12/2026")


def test_check_rule_normalises_numbers_and_refuses_what_cannot_work(settings: Settings) -> None:
    conditions, action = check_rule(
        settings,
        name="VIP",
        conditions={"numbers": ["(555) 010-7777", "+1 555 010 7777"], "prefixes": ["+1 212"]},
        action={"type": "transfer", "destination": "Claims"},
    )
    assert conditions.numbers == ["+15550107777"] and conditions.prefixes == ["+1212"]
    bad = [
        ({"numbers": ["not a number"]}, {"type": "tag", "tag": "x"}, "numbers"),
        ({}, {"type": "transfer", "destination": "Billing"}, "Known: Claims, Sales"),
        ({"digit": "12"}, {"type": "voicemail"}, "digit"),
        ({"keywords": ["help"], "digit": "0"}, {"type": "voicemail"}, "one thing"),
        ({"keywords": ["spam"]}, {"type": "reject"}, "before it is answered"),
        ({}, {"type": "sms", "to": "owner"}, "needs its text"),
        ({}, {"type": "launch"}, "action.type"),
        ({"hours": "sometimes"}, {"type": "voicemail"}, "hours"),
    ]
    for conditions_in, action_in, message in bad:
        with pytest.raises(ConfigError, match=message):
            check_rule(settings, name="x", conditions=conditions_in, action=action_in)
    with pytest.raises(ConfigError, match="name"):
        check_rule(settings, name=" ", conditions={}, action={"type": "voicemail"})


def test_time_conditions(settings: Settings) -> None:
    assert hours_now(settings, OPEN) == {"open"}
    assert hours_now(settings, EVENING) == {"after_hours"}
    assert hours_now(settings, CHRISTMAS) == {"after_hours", "closed_day"}
    rules = [
        rule(settings, 1, {"hours": "closed_day"}, {"type": "hang_up", "text": "Merry Christmas."}),
        rule(settings, 2, {"hours": "after_hours"}, {"type": "voicemail"}),
        rule(settings, 3, {"hours": "open"}, {"type": "tag", "tag": "daytime"}),
    ]
    fired = {
        when: [r.id for r in incoming_matches(rules, settings, CallFacts(when, "+15550100009"))]
        for when in (OPEN, EVENING, CHRISTMAS)
    }
    assert fired == {OPEN: [3], EVENING: [2], CHRISTMAS: [1]}


def test_caller_conditions_and_order(settings: Settings) -> None:
    rules = [
        rule(settings, 1, {"numbers": ["+15550106666"]}, {"type": "reject"}, "Blocked"),
        rule(settings, 2, {"numbers": ["+15550107777"]}, {"type": "tag", "tag": "vip"}, "VIP tag"),
        rule(settings, 3, {"numbers": ["+15550107777"]}, {"type": "transfer", "destination": "Sales"}),
        rule(settings, 4, {"caller": "new"}, {"type": "persona", "text": "Welcome them warmly."}),
        rule(settings, 5, {"prefixes": ["+44"]}, {"type": "transfer", "destination": "Claims"}),
        rule(settings, 6, {"caller": "returning"}, {"type": "sms", "to": "owner", "text": "Back again"}),
    ]

    def ids(caller: str | None, returning: bool = False) -> list[int]:
        return [r.id for r in incoming_matches(rules, settings, CallFacts(OPEN, caller, returning))]

    assert ids("+15550106666") == [1]  # blocked: nothing after a terminal rule
    assert ids("+15550107777", returning=True) == [2, 3]  # tag, then transfer (terminal)
    assert ids("+442079460000") == [4, 5]
    assert ids("+15550100009", returning=True) == [6]
    assert ids(None) == [4]  # a withheld number is a new caller in no list
    disabled = [Rule(1, "off", rules[0].conditions, rules[0].action, enabled=False)]
    assert incoming_matches(disabled, settings, CallFacts(OPEN, "+15550106666")) == []


def test_in_call_events(settings: Settings) -> None:
    rules = [
        rule(
            settings,
            1,
            {"keywords": ["speak to a person", "human"]},
            {"type": "transfer", "destination": "Sales"},
        ),
        rule(settings, 2, {"intents": ["file a claim"]}, {"type": "transfer", "destination": "Claims"}),
        rule(settings, 3, {"digit": "0"}, {"type": "transfer", "destination": "Sales"}),
        rule(settings, 4, {"misunderstood_turns": 2}, {"type": "voicemail"}),
        rule(
            settings,
            5,
            {"keywords": ["emergency"], "hours": "after_hours"},
            {"type": "sms", "to": "owner", "text": "!"},
        ),
        rule(settings, 6, {"hours": "open"}, {"type": "tag", "tag": "not in call"}),
    ]
    facts = CallFacts(OPEN, "+15550100009")

    def ids(event: CallEvent, at: CallFacts = facts, already: tuple[int, ...] = ()) -> list[int]:
        return [r.id for r in event_matches(rules, settings, at, event, already=already)]

    assert ids(CallEvent("text", "Can I please speak to a person?")) == [1]
    assert ids(CallEvent("text", "Is a humane trap legal?")) == []  # whole words only
    assert ids(CallEvent("text", "Let me talk to a HUMAN")) == [1]
    assert ids(CallEvent("text", "Can I speak to a person"), already=(1,)) == []  # once per call
    assert ids(CallEvent("intent", "File a  claim")) == [2]
    assert ids(CallEvent("digit", "0")) == [3] and ids(CallEvent("digit", "5")) == []
    assert ids(CallEvent("misunderstood", count=1)) == [] and ids(CallEvent("misunderstood", count=2)) == [4]
    assert ids(CallEvent("text", "It's an emergency")) == []  # only after hours
    assert ids(CallEvent("text", "It's an emergency"), at=CallFacts(EVENING, "+15550100009")) == [5]
    assert intents_of(rules) == ["file a claim"]
    assert says("I'd like to cancel my policy.", "cancel my policy") and not says("cancelled", "cancel")
