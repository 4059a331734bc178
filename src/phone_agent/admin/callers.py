"""Callers for the admin page: search by number or name, and one caller's profile, memories and calls.

Profile and memories come through the memory API (``caller_context``); the caller list and the
calls come from this process's database (the memory API has no listing).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from phone_agent.memory.summary import outcome_label
from phone_agent.services import Services
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import Call, Caller, Memory


async def search_callers(services: Services, query: str, *, limit: int = 25) -> list[dict[str, Any]]:
    """Callers whose number or name contains ``query`` (all callers, newest first, when empty)."""
    memories = select(Memory.caller_id, func.count().label("n")).group_by(Memory.caller_id).subquery()
    stmt = select(Caller, memories.c.n).outerjoin(memories, memories.c.caller_id == Caller.id)
    if query.strip():
        pattern = f"%{query.strip().lower()}%"
        digits = normalise_phone(query)
        stmt = stmt.where(or_(Caller.phone.like(f"%{digits}%"), func.lower(Caller.name).like(pattern)))
    stmt = stmt.order_by(Caller.last_call_at.desc().nulls_last(), Caller.id.desc()).limit(limit)
    async with services.sessions() as session:
        rows = (await session.execute(stmt)).all()
    return [
        {
            "phone": caller.phone,
            "name": caller.name,
            "memories": n or 0,
            "last_call_at": caller.last_call_at.isoformat() if caller.last_call_at else None,
        }
        for caller, n in rows
    ]


async def caller_view(services: Services, phone: str) -> dict[str, Any]:
    """A caller's profile, memories (with ids) and calls."""
    context = await services.memory.caller_context(phone, limit=500)
    async with services.sessions() as session:
        calls = (
            await session.execute(
                select(
                    Call.call_sid, Call.started_at, Call.status, Call.summary, Call.outcome, Call.direction
                )
                .where(or_(Call.from_number == context.phone, Call.to_number == context.phone))
                .order_by(Call.started_at.desc())
                .limit(50)
            )
        ).all()
    return {
        "phone": context.phone,
        "name": context.name,
        "known": context.known or bool(calls),
        "profile": context.profile,
        "memories": [m.model_dump(mode="json") for m in context.memories],
        "calls": [
            {
                "call_sid": sid,
                "started_at": at.isoformat(),
                "status": status,
                "summary": summary,
                "outcome": outcome,
                "outcome_label": outcome_label(outcome),
                "channel": "chat" if direction == "chat" else "call",
            }
            for sid, at, status, summary, outcome, direction in calls
        ],
    }
