"""The "Call routing" section of the admin page: the rules in order, the add/edit form, "Test a rule".

A rule's form holds its lists as text (numbers one per line, keywords and intents comma-separated);
``rule_from_form`` turns it into the dicts ``brain.routing.rules.check_rule`` validates. The test is
a GET form (``rt_*`` query values): nothing is stored or sent by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from phone_agent.brain.routing.rules import ACTION_TYPES, DIGITS, load_rule, split_list
from phone_agent.brain.routing.trial import recognise_intent, trial
from phone_agent.config import e164
from phone_agent.services import Services
from phone_agent.storage.routing import is_returning, list_rules
from phone_agent.storage.tables import RoutingRule, utcnow

RULE_FIELDS = (
    "name",
    "hours",
    "caller",
    "numbers",
    "prefixes",
    "keywords",
    "intents",
    "digit",
    "misunderstood_turns",
    "action",
    "destination",
    "sms_to",
    "text",
    "tag",
)
HOURS = (
    ("", "any time"),
    ("open", "business hours"),
    ("after_hours", "after hours"),
    ("closed_day", "closed day"),
)
CALLERS = (("", "any caller"), ("new", "new caller"), ("returning", "returning caller"))


def rule_from_form(form: Mapping[str, str]) -> tuple[str, bool, dict[str, Any], dict[str, Any]]:
    """A submitted rule form as (name, enabled, conditions, action), for ``check_rule``."""
    turns = form.get("misunderstood_turns", "").strip()
    conditions = {
        "hours": form.get("hours", ""),
        "caller": form.get("caller", ""),
        "numbers": split_list(form.get("numbers", "")),
        "prefixes": split_list(form.get("prefixes", "")),
        "keywords": split_list(form.get("keywords", "")),
        "intents": split_list(form.get("intents", "")),
        "digit": form.get("digit", ""),
        "misunderstood_turns": int(turns) if turns.isdigit() else (turns or 0),
    }
    action = {
        "type": form.get("action", ""),
        "destination": form.get("destination", ""),
        "to": form.get("sms_to", "caller") or "caller",
        "text": form.get("text", ""),
        "tag": form.get("tag", "").strip(),
    }
    return form.get("name", "").strip(), form.get("enabled", "") in ("on", "1", "true"), conditions, action


def _form_of(row: RoutingRule) -> dict[str, Any]:
    c, a = row.conditions or {}, row.action or {}
    return {
        "name": row.name,
        "enabled": row.enabled,
        "hours": c.get("hours", ""),
        "caller": c.get("caller", ""),
        "numbers": "\n".join(c.get("numbers") or []),
        "prefixes": ", ".join(c.get("prefixes") or []),
        "keywords": ", ".join(c.get("keywords") or []),
        "intents": ", ".join(c.get("intents") or []),
        "digit": c.get("digit", ""),
        "misunderstood_turns": c.get("misunderstood_turns") or "",
        "action": a.get("type", ""),
        "destination": a.get("destination", ""),
        "sms_to": a.get("to", "caller"),
        "text": a.get("text", ""),
        "tag": a.get("tag", ""),
    }


def _row_view(row: RoutingRule) -> dict[str, Any]:
    rule = load_rule(row)
    return {
        "id": row.id,
        "position": row.position,
        "name": row.name,
        "enabled": row.enabled,
        "when": rule.conditions.summary() if rule else "(not valid any more: edit it)",
        "then": rule.action.summary() if rule else "",
        "stage": ("in the call" if rule.conditions.in_call() else "when it rings") if rule else "",
    }


async def routing_context(
    services: Services,
    request: Request,
    *,
    error: str | None = None,
    entered: Mapping[str, Any] | None = None,
    editing: int | None = None,
) -> dict[str, Any]:
    """What the Call routing section shows (``error``/``entered``: a refused rule form, shown again)."""
    rows = await list_rules(services.sessions)
    query = request.query_params
    if editing is None and query.get("edit_rule", "").isdigit():
        editing = int(query["edit_rule"])
    edited = next((row for row in rows if row.id == editing), None)
    if entered is not None:
        form: dict[str, Any] = {**dict(entered), "enabled": entered.get("enabled") in ("on", "1", "true")}
    elif edited is not None:
        form = _form_of(edited)
    else:
        form = {"enabled": True, "sms_to": "caller"}
    return {
        "routing_rules": [_row_view(row) for row in rows],
        "rule_form": form,
        "rule_editing": edited.id if edited is not None else None,
        "rule_error": error,
        "rule_choices": {"hours": HOURS, "caller": CALLERS, "digits": DIGITS, "actions": ACTION_TYPES},
        "destinations": list(services.settings.destinations()),
        "routing_test": await _test(services, query, rows) if "rt_when" in query else None,
    }


async def _test(services: Services, query: Mapping[str, str], rows: list[RoutingRule]) -> dict[str, Any]:
    """Run "Test a rule" for the query's time, number, sentence and key."""
    settings = services.settings
    tz = ZoneInfo(settings.timezone)
    entered = {k: query.get(k, "") for k in ("rt_when", "rt_number", "rt_text", "rt_digit")}
    try:
        when = (
            datetime.fromisoformat(entered["rt_when"]).replace(tzinfo=tz) if entered["rt_when"] else utcnow()
        )
    except ValueError:
        return {"entered": entered, "error": "Give the time as YYYY-MM-DD HH:MM."}
    number = entered["rt_number"].strip()
    try:
        caller = e164(number, settings.default_country) if number else None
    except ValueError as exc:
        return {"entered": entered, "error": f"The number is {exc}."}
    digit = entered["rt_digit"] if entered["rt_digit"] in DIGITS else ""
    rules = [rule for row in rows if (rule := load_rule(row)) is not None]
    intent = await recognise_intent(services.llm, settings, rules, entered["rt_text"])
    result = await trial(
        settings,
        rules,
        when=when,
        caller=caller,
        returning=await is_returning(services.sessions, caller, ""),
        sentence=entered["rt_text"],
        digit=digit,
        intent=intent,
    )
    local = when.astimezone(tz)
    return {
        "entered": entered,
        "error": None,
        "result": result,
        "when": f"{local:%a %Y-%m-%d %H:%M} ({tz.key})",
    }
