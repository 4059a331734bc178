"""Rows of the ``calls`` and ``call_turns`` tables: a call opened, its turns, its end.

Used by the Twilio webhooks (call ringing, call completed), the call recorder in the pipeline and
the chat API. Each function opens its own short transaction so a live call never holds one. Phone
numbers are matched in their normalised form (``storage.phones``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.callers import caller_by_phone, ensure_caller
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_optional
from phone_agent.storage.tables import Call, utcnow
from phone_agent.storage.turns import append_turns

FINAL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")


async def open_call(
    sessions: async_sessionmaker[AsyncSession],
    *,
    call_sid: str,
    from_number: str | None,
    to_number: str | None = None,
    stream_sid: str | None = None,
    status: str = "in-progress",
    direction: str = "inbound",
) -> int:
    """Create (or update) the call's row, linked to its caller (made at the first call from a number
    that is not withheld); returns the call id."""
    from_number, to_number = normalise_optional(from_number), normalise_optional(to_number)
    async with transaction(sessions) as session:
        call = (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one_or_none()
        caller = await ensure_caller(session, from_number)  # the caller is kept from the first call
        if call is None:
            call = Call(call_sid=call_sid, direction=direction, started_at=utcnow())
            session.add(call)
        call.from_number = from_number or call.from_number
        call.to_number = to_number or call.to_number
        call.stream_sid = stream_sid or call.stream_sid
        if call.status not in FINAL_STATUSES:
            call.status = status
        if caller is not None:
            call.caller_id = caller.id
            caller.last_call_at = utcnow()
        await session.flush()
        return call.id


async def open_web_call(
    sessions: async_sessionmaker[AsyncSession], *, call_sid: str, caller: str, instance_id: str
) -> int:
    """The row of a softphone call from the admin page (``channel="web"``), live and held by this
    process (so a crash of it closes the call like a phone call's); returns the call id."""
    async with transaction(sessions) as session:
        known = await caller_by_phone(session, caller)
        call = Call(
            call_sid=call_sid,
            channel="web",
            direction="inbound",
            from_number=caller,
            status="in-progress",
            started_at=utcnow(),
            stream_started_at=utcnow(),
            instance_id=instance_id,
            caller_id=known.id if known else None,
        )
        session.add(call)
        await session.flush()
        return call.id


async def finish_call(
    sessions: async_sessionmaker[AsyncSession],
    *,
    call_sid: str,
    status: str,
    end_reason: str | None = None,
    ended_at: datetime | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    release: bool = False,
) -> int:
    """Mark the call ended (creating its row if the stream never started); returns the call id.

    ``release``: the process holding the call ends it (``storage.instances``): it is no longer held.
    """
    from_number, to_number = normalise_optional(from_number), normalise_optional(to_number)
    async with transaction(sessions) as session:
        call = (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one_or_none()
        if call is None:
            caller = await caller_by_phone(session, from_number)
            call = Call(
                call_sid=call_sid,
                from_number=from_number,
                to_number=to_number,
                caller_id=caller.id if caller else None,
            )
            session.add(call)
        call.status = status
        call.ended_at = call.ended_at or ended_at or utcnow()
        call.end_reason = call.end_reason or end_reason
        if release:
            call.instance_id = None
        await session.flush()
        return call.id


async def call_row(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> Call | None:
    """The call's row as it is now (detached: read its columns, change nothing)."""
    async with sessions() as session:
        return await session.scalar(select(Call).where(Call.call_sid == call_sid))


async def set_end_reason(
    sessions: async_sessionmaker[AsyncSession], *, call_sid: str, end_reason: str
) -> None:
    """Record how the agent's part of a call ended (e.g. ``"stt_failed → voicemail"``) while Twilio
    may still carry the caller on (a transfer, a voicemail); Twilio's final status closes the row."""
    async with transaction(sessions) as session:
        call = (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one_or_none()
        if call is None:
            session.add(Call(call_sid=call_sid, status="in-progress", end_reason=end_reason))
        else:
            call.end_reason = end_reason


async def add_turn(
    sessions: async_sessionmaker[AsyncSession],
    *,
    call_id: int,
    role: str,
    text: str,
    marks: dict[str, Any] | None = None,
    planned_text: str | None = None,
    interrupted: bool = False,
    tool_calls: list[Any] | None = None,
) -> int:
    """Append a turn to a call (sequence numbers follow the order of calls); returns its id."""
    row = {
        "role": role,
        "text": text,
        "planned_text": planned_text,
        "interrupted": interrupted,
        "tool_calls": tool_calls,
        "marks": marks or {},
    }
    [turn] = await append_turns(sessions, call_id, [row])
    return turn.id
