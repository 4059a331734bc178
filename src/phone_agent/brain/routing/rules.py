"""What a routing rule is: conditions (all must hold) and one action, checked before they are stored.

Conditions, each optional:

- time: ``hours`` = ``open`` (inside ``business_hours`` and not a ``closed_days`` date),
  ``after_hours`` (not open), ``closed_day`` (a ``closed_days`` date, e.g. a holiday);
- caller: ``numbers`` (the caller is one of them, E.164: a VIP or a blocked list), ``caller`` = ``new``
  or ``returning``, ``prefixes`` (the number starts with one: a country or area code like +44, +1212);
- what the caller says: ``keywords`` (any of them, as words, in a sentence) or ``intents`` (the LLM
  recognised one through the ``route_call`` tool, e.g. "file a claim", "speak to a person");
- ``digit``: a key the caller pressed (DTMF) at any time;
- ``misunderstood_turns``: the agent did not understand the caller this many times.

Rules with only time and caller conditions run at ``/phone/incoming`` and can answer the call with
TwiML alone; rules with any of the others run during the call. Actions: ``transfer`` (to a named
``transfer_destinations`` entry, warm: the person hears why), ``voicemail``, ``sms`` (to the caller
or the owner), ``hang_up`` (say ``text``, then end), ``reject`` (refuse the call unanswered),
``persona`` (replace the instructions with ``text`` for the rest of the call), ``tag``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from phone_agent.config import Settings, e164
from phone_agent.errors import ConfigError

ActionType = Literal["transfer", "voicemail", "sms", "hang_up", "reject", "persona", "tag"]
ACTION_TYPES: tuple[str, ...] = ("transfer", "voicemail", "sms", "hang_up", "reject", "persona", "tag")
TERMINAL_ACTIONS = frozenset({"transfer", "voicemail", "hang_up", "reject"})  # the call leaves the agent
DIGITS = "0123456789*#"
UNCLEAR = "unclear"  # the intent the agent reports when it did not understand the caller


def split_list(text: str) -> list[str]:
    """'a, b; c\\nd' → ['a', 'b', 'c', 'd'] (form fields hold lists as text)."""
    return [item.strip() for item in re.split(r"[,;\n]", text) if item.strip()]


class Conditions(BaseModel):
    """When a rule fires: every condition given must hold."""

    model_config = ConfigDict(extra="forbid")

    hours: Literal["", "open", "after_hours", "closed_day"] = ""
    numbers: list[str] = Field(default_factory=list, max_length=1000)
    caller: Literal["", "new", "returning"] = ""
    prefixes: list[str] = Field(default_factory=list, max_length=100)
    keywords: list[str] = Field(default_factory=list, max_length=100)
    intents: list[str] = Field(default_factory=list, max_length=20)
    digit: str = ""
    misunderstood_turns: int = Field(0, ge=0, le=20)

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        cleaned = [re.sub(r"[\s\-().]", "", p) for p in value]
        for prefix in cleaned:
            if not re.fullmatch(r"\+\d{1,8}", prefix):
                raise ValueError(f"{prefix!r} is not a number prefix; write it like +44 or +1212")
        return cleaned

    @field_validator("keywords", "intents")
    @classmethod
    def _phrases(cls, value: list[str]) -> list[str]:
        cleaned = [" ".join(v.lower().split()) for v in value if v.strip()]
        if any(len(v) > 100 for v in cleaned):
            raise ValueError("keep each phrase under 100 characters")
        return cleaned

    @field_validator("digit")
    @classmethod
    def _digit(cls, value: str) -> str:
        value = value.strip()
        if value and (len(value) != 1 or value not in DIGITS):
            raise ValueError("a digit is one key: 0-9, * or #")
        return value

    def in_call(self) -> bool:
        """True when the rule needs the call going (words, intents, digits, misunderstandings)."""
        return bool(self.keywords or self.intents or self.digit or self.misunderstood_turns)

    def summary(self) -> str:
        """The conditions in a few words, for the admin page."""
        parts = []
        if self.hours:
            parts.append(self.hours.replace("_", " "))
        if self.caller:
            parts.append(f"{self.caller} caller")
        if self.numbers:
            parts.append(f"caller in {len(self.numbers)} number{'s' if len(self.numbers) != 1 else ''}")
        if self.prefixes:
            parts.append("number starts " + " or ".join(self.prefixes))
        if self.keywords:
            parts.append("says " + " or ".join(f"“{k}”" for k in self.keywords))
        if self.intents:
            parts.append("intent " + " or ".join(f"“{i}”" for i in self.intents))
        if self.digit:
            parts.append(f"presses {self.digit}")
        if self.misunderstood_turns:
            parts.append(f"not understood {self.misunderstood_turns}×")
        return ", ".join(parts) or "every call"


class Action(BaseModel):
    """What a rule does when it fires."""

    model_config = ConfigDict(extra="forbid")

    type: ActionType
    destination: str = ""  # transfer: a transfer_destinations name
    to: Literal["caller", "owner"] = "caller"  # sms
    text: str = Field("", max_length=2000)  # sms body, hang_up message, persona instructions
    tag: str = Field("", max_length=50)

    def summary(self) -> str:
        """The action in a few words, for the admin page."""
        return {
            "transfer": f"transfer to {self.destination}",
            "voicemail": "voicemail",
            "sms": f"SMS to the {self.to}",
            "hang_up": "say a message and hang up",
            "reject": "reject the call",
            "persona": "switch instructions",
            "tag": f"tag “{self.tag}”",
        }[self.type]

    @property
    def terminal(self) -> bool:
        """True when the call leaves the agent (no later rule runs)."""
        return self.type in TERMINAL_ACTIONS


@dataclass(frozen=True)
class Rule:
    """A stored rule, checked."""

    id: int
    name: str
    conditions: Conditions
    action: Action
    enabled: bool = True
    position: int = 0

    def event(self, stage: str, detail: str) -> dict[str, Any]:
        """The entry stored on the call's row when this rule fires."""
        return {
            "rule_id": self.id,
            "name": self.name,
            "action": self.action.type,
            "stage": stage,
            "detail": detail,
        }


def check_rule(
    settings: Settings, *, name: str, conditions: dict[str, Any], action: dict[str, Any]
) -> tuple[Conditions, Action]:
    """Validate a rule against the settings; ConfigError says what is wrong (nothing is stored).

    Numbers are stored in E.164 (national forms read in ``default_country``); a transfer names a
    ``transfer_destinations`` entry; ``reject`` only works before the call is answered.
    """
    if not name.strip() or len(name) > 200:
        raise ConfigError("A rule needs a name (up to 200 characters).")
    checked = _validated(Conditions, conditions, "conditions")
    act = _validated(Action, action, "action")
    numbers = []
    for number in checked.numbers:
        try:
            numbers.append(e164(number, settings.default_country))
        except ValueError as exc:
            raise ConfigError(f"numbers: {number!r} is {exc}.") from None
    checked = checked.model_copy(update={"numbers": list(dict.fromkeys(numbers))})
    if (
        sum(
            bool(x) for x in (checked.keywords or checked.intents, checked.digit, checked.misunderstood_turns)
        )
        > 1
    ):
        raise ConfigError(
            "A rule reacts to one thing in the call: words/intents, a digit, or misunderstandings."
        )
    _check_action(settings, checked, act)
    return checked, act


def _validated(model: type[Any], data: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join([what, *(str(p) for p in err["loc"])])
        raise ConfigError(f"{where}: {err['msg']}.") from None


def _check_action(settings: Settings, conditions: Conditions, action: Action) -> None:
    if action.type == "transfer":
        names = settings.destinations()
        if action.destination not in names:
            known = ", ".join(names) or "none yet: add them in transfer_destinations"
            raise ConfigError(f"Transfer to which destination? Known: {known}.")
    if action.type in ("sms", "hang_up", "persona") and not action.text.strip():
        raise ConfigError(f"A {action.type} action needs its text.")
    if action.type == "tag" and not action.tag.strip():
        raise ConfigError("A tag action needs the tag.")
    if action.type == "reject" and conditions.in_call():
        raise ConfigError(
            "Reject refuses a call before it is answered: use it with time or caller conditions."
        )


def load_rule(row: Any) -> Rule | None:
    """A stored ``RoutingRule`` row as a Rule; None when it no longer validates (skipped, logged)."""
    try:
        return Rule(
            id=row.id,
            name=row.name,
            conditions=Conditions.model_validate(row.conditions or {}),
            action=Action.model_validate(row.action or {}),
            enabled=row.enabled,
            position=row.position,
        )
    except ValidationError:
        return None
