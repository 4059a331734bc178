"""Rows of ``routing_rules`` (ordered, edited in the admin's Call routing section) and the routing
record of a call (``calls.routing_rule``, ``routing_events``, ``tags``).

Rules are stored as they were checked by ``brain.routing.rules``; this module keeps their order:
positions are 1..n with no gaps after every change. Each function opens its own short transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import e164
from phone_agent.errors import NotFoundError
from phone_agent.storage.callers import caller_by_phone
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import AuditEntry, Call, Memory, RoutingRule

Sessions = async_sessionmaker[AsyncSession]


async def list_rules(sessions: Sessions, *, enabled_only: bool = False) -> list[RoutingRule]:
    """Every rule in order (only the enabled ones with ``enabled_only``)."""
    statement = select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)
    if enabled_only:
        statement = statement.where(RoutingRule.enabled.is_(True))
    async with sessions() as session:
        return list((await session.execute(statement)).scalars())


async def add_rule(
    sessions: Sessions,
    *,
    name: str,
    conditions: dict[str, Any],
    action: dict[str, Any],
    enabled: bool = True,
    actor: str = "admin",
) -> int:
    """Append a rule (last in order); returns its id."""
    async with transaction(sessions) as session:
        last = await session.scalar(select(func.max(RoutingRule.position)))
        rule = RoutingRule(
            position=(last or 0) + 1, name=name, enabled=enabled, conditions=conditions, action=action
        )
        session.add(rule)
        await session.flush()
        session.add(AuditEntry(actor=actor, action="routing.add", target=name, new_value=_shown(rule)))
        return rule.id


async def update_rule(
    sessions: Sessions,
    rule_id: int,
    *,
    name: str,
    conditions: dict[str, Any],
    action: dict[str, Any],
    enabled: bool,
    actor: str = "admin",
) -> None:
    """Replace a rule's name, conditions, action and enabled flag (its place stays)."""
    async with transaction(sessions) as session:
        rule = await _rule(session, rule_id)
        old = _shown(rule)
        rule.name, rule.conditions, rule.action, rule.enabled = name, conditions, action, enabled
        session.add(
            AuditEntry(actor=actor, action="routing.edit", target=name, old_value=old, new_value=_shown(rule))
        )


async def set_enabled(sessions: Sessions, rule_id: int, enabled: bool, *, actor: str = "admin") -> None:
    """Switch a rule on or off."""
    async with transaction(sessions) as session:
        rule = await _rule(session, rule_id)
        rule.enabled = enabled
        session.add(
            AuditEntry(
                actor=actor, action="routing.enable" if enabled else "routing.disable", target=rule.name
            )
        )


async def move_rule(sessions: Sessions, rule_id: int, offset: int, *, actor: str = "admin") -> None:
    """Move a rule ``offset`` places (negative: earlier); clamped to the ends of the list."""
    async with transaction(sessions) as session:
        rules = list(
            (
                await session.execute(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id))
            ).scalars()
        )
        index = next((i for i, r in enumerate(rules) if r.id == rule_id), None)
        if index is None:
            raise NotFoundError(f"No routing rule {rule_id}.")
        rule = rules.pop(index)
        rules.insert(max(0, min(len(rules), index + offset)), rule)
        for position, each in enumerate(rules, start=1):
            each.position = position
        session.add(
            AuditEntry(actor=actor, action="routing.move", target=rule.name, new_value=str(rule.position))
        )


async def delete_rule(sessions: Sessions, rule_id: int, *, actor: str = "admin") -> None:
    """Delete a rule; the rules after it move up."""
    async with transaction(sessions) as session:
        rule = await _rule(session, rule_id)
        await session.delete(rule)
        await session.flush()
        rest = (await session.execute(select(RoutingRule).order_by(RoutingRule.position))).scalars()
        for position, each in enumerate(rest, start=1):
            each.position = position
        session.add(
            AuditEntry(actor=actor, action="routing.delete", target=rule.name, old_value=_shown(rule))
        )


async def forget_number(sessions: Sessions, phone: str, default_country: str = "US") -> int:
    """Remove a caller's number from every rule's number list (the caller's data is being deleted);
    returns how many rules changed."""
    forms = {normalise_phone(phone)}
    try:
        forms.add(e164(phone, default_country))
    except ValueError:
        pass
    changed = 0
    async with transaction(sessions) as session:
        for rule in (await session.execute(select(RoutingRule))).scalars():
            numbers = list(rule.conditions.get("numbers") or [])
            if forms & set(numbers):
                rule.conditions = {**rule.conditions, "numbers": [n for n in numbers if n not in forms]}
                changed += 1
    return changed


async def record_routing(
    sessions: Sessions,
    *,
    call_sid: str,
    event: dict[str, Any],
    tag: str | None = None,
    end_reason: str | None = None,
) -> None:
    """Note on the call's row that a rule fired (``event``: rule_id, name, action, stage, detail)."""
    async with transaction(sessions) as session:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            call = Call(call_sid=call_sid, status="in-progress")
            session.add(call)
        call.routing_rule = str(event.get("name") or "")[:200]
        call.routing_events = [*(call.routing_events or []), event]  # a new list: JSON is not mutable
        if tag and tag not in (call.tags or []):
            call.tags = [*(call.tags or []), tag]
        if end_reason:
            call.end_reason = end_reason[:64]


async def is_returning(sessions: Sessions, phone: str | None, call_sid: str) -> bool:
    """True when this number called before (an earlier call's row) or memory knows the caller (a
    name or memories: the caller's row itself is made at their first call, ``ensure_caller``)."""
    if not phone:
        return False
    async with sessions() as session:
        earlier = await session.scalar(
            select(Call.id).where(Call.from_number == phone, Call.call_sid != call_sid).limit(1)
        )
        if earlier is not None:
            return True
        caller = await caller_by_phone(session, phone)
        if caller is None:
            return False
        remembered = await session.scalar(select(Memory.id).where(Memory.caller_id == caller.id).limit(1))
        return bool(caller.name) or remembered is not None


async def routing_events(sessions: Sessions, call_sid: str) -> list[dict[str, Any]]:
    """The rules that fired on a call so far (e.g. at ``/phone/incoming``, read when its stream opens)."""
    async with sessions() as session:
        events = await session.scalar(select(Call.routing_events).where(Call.call_sid == call_sid))
    return list(events or [])


async def _rule(session: AsyncSession, rule_id: int) -> RoutingRule:
    rule = await session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFoundError(f"No routing rule {rule_id}.")
    return rule


def _shown(rule: RoutingRule) -> str:
    return f"{'on' if rule.enabled else 'off'}; when {rule.conditions}; then {rule.action}"[:2000]
