"""Rows of outbound calls and the do-not-call list.

An outbound call is recorded twice over: its ``calls`` row (direction ``outbound``, the callee as
the caller whose memory the agent uses, turns and timings like any call) and its ``outbound_calls``
row (purpose, who asked, every Twilio status callback, the answering-machine verdict). The
``outbound_calls`` row exists before Twilio is asked, so a refused or failed request is kept too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.callers import caller_id
from phone_agent.storage.calls import FINAL_STATUSES
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import Call, DoNotCall, OutboundCall, utcnow

PRE_ANSWER_STATUSES = ("queued", "initiated", "ringing")
ATTEMPTS = 3


@dataclass(frozen=True)
class OutboundView:
    """An outbound call as the API shows it."""

    ref: str
    call_sid: str | None
    to: str
    purpose: str
    status: str
    answered_by: str | None
    events: list[dict[str, Any]]
    error: str | None
    requested_by: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """JSON for ``/v1/calls`` and the admin page."""
        return {
            "call_sid": self.call_sid,
            "to": self.to,
            "purpose": self.purpose,
            "direction": "outbound",
            "status": self.status,
            "answered_by": self.answered_by,
            "events": self.events,
            "error": self.error,
            "requested_by": self.requested_by,
            "created_at": self.created_at.isoformat(),
        }


def _view(row: OutboundCall) -> OutboundView:
    return OutboundView(
        ref=row.ref,
        call_sid=row.call_sid,
        to=row.to_number,
        purpose=row.purpose,
        status=row.status,
        answered_by=row.answered_by,
        events=list(row.events or []),
        error=row.error,
        requested_by=row.requested_by,
        created_at=row.created_at,
    )


# -- do-not-call list -------------------------------------------------------------------------------
async def on_do_not_call(sessions: async_sessionmaker[AsyncSession], phone: str) -> bool:
    """True when ``phone`` is on the do-not-call list."""
    async with sessions() as session:
        return await session.get(DoNotCall, normalise_phone(phone)) is not None


async def add_do_not_call(
    sessions: async_sessionmaker[AsyncSession], phone: str, *, note: str | None = None, added_by: str
) -> bool:
    """Put ``phone`` on the list; False when it was there already."""
    phone = normalise_phone(phone)
    async with transaction(sessions) as session:
        if await session.get(DoNotCall, phone) is not None:
            return False
        session.add(DoNotCall(phone=phone, note=(note or "").strip()[:300] or None, added_by=added_by))
    return True


async def remove_do_not_call(sessions: async_sessionmaker[AsyncSession], phone: str) -> bool:
    """Take ``phone`` off the list; False when it was not on it."""
    async with transaction(sessions) as session:
        result = await session.execute(delete(DoNotCall).where(DoNotCall.phone == normalise_phone(phone)))
    return bool(getattr(result, "rowcount", 0))


async def list_do_not_call(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    """The whole list, newest first."""
    async with sessions() as session:
        rows = (await session.execute(select(DoNotCall).order_by(DoNotCall.created_at.desc()))).scalars()
        return [
            {"phone": r.phone, "note": r.note, "added_by": r.added_by, "created_at": r.created_at.isoformat()}
            for r in rows
        ]


# -- outbound calls ---------------------------------------------------------------------------------
async def create_outbound(
    sessions: async_sessionmaker[AsyncSession], *, ref: str, to: str, purpose: str, requested_by: str
) -> None:
    """Record a call about to be placed (status ``queued``)."""
    async with transaction(sessions) as session:
        session.add(
            OutboundCall(ref=ref, to_number=to, purpose=purpose, requested_by=requested_by, events=[])
        )


async def outbound_failed(sessions: async_sessionmaker[AsyncSession], *, ref: str, error: str) -> None:
    """Twilio refused to place the call: keep why."""
    async with transaction(sessions) as session:
        row = await session.scalar(select(OutboundCall).where(OutboundCall.ref == ref))
        if row is not None:
            row.status, row.error = "failed", error[:2000]


async def attach_call(
    sessions: async_sessionmaker[AsyncSession], *, ref: str, call_sid: str, from_number: str | None
) -> OutboundView | None:
    """Link the outbound row to its Twilio call (creating the ``calls`` row); idempotent."""
    for attempt in range(ATTEMPTS):
        try:
            return await _attach_call(sessions, ref=ref, call_sid=call_sid, from_number=from_number)
        except IntegrityError:  # a callback created the same call row at the same moment
            if attempt == ATTEMPTS - 1:
                raise
    return None


async def _attach_call(
    sessions: async_sessionmaker[AsyncSession], *, ref: str, call_sid: str, from_number: str | None
) -> OutboundView | None:
    async with transaction(sessions) as session:
        row = await session.scalar(select(OutboundCall).where(OutboundCall.ref == ref))
        if row is None:
            return None
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            call = Call(
                call_sid=call_sid,
                direction="outbound",
                from_number=from_number,
                to_number=row.to_number,
                status="queued",
                started_at=utcnow(),
                caller_id=await caller_id(session, row.to_number),  # the callee: whose memory is used
            )
            session.add(call)
            await session.flush()
        row.call_sid, row.call_id = call_sid, call.id
        return _view(row)


async def outbound_by_ref(sessions: async_sessionmaker[AsyncSession], ref: str) -> OutboundView | None:
    """The outbound call named ``ref`` in its callback URLs."""
    async with sessions() as session:
        row = await session.scalar(select(OutboundCall).where(OutboundCall.ref == ref))
        return _view(row) if row else None


async def outbound_by_sid(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> OutboundView | None:
    """The outbound call with this Twilio CallSid."""
    async with sessions() as session:
        row = await session.scalar(select(OutboundCall).where(OutboundCall.call_sid == call_sid))
        return _view(row) if row else None


async def record_status(
    sessions: async_sessionmaker[AsyncSession],
    *,
    ref: str,
    status: str,
    call_sid: str | None = None,
    sequence: str | None = None,
    duration: str | None = None,
) -> OutboundView | None:
    """Append one status callback; a final status is not replaced by a late, earlier one.

    Before its stream starts the call's row shows the progress too (queued, initiated, ringing);
    ``in-progress`` is the media stream's to set when it claims the call (``storage.streams``).
    """
    async with transaction(sessions) as session:
        row = await session.scalar(select(OutboundCall).where(OutboundCall.ref == ref))
        if row is None:
            return None
        if call_sid and status in PRE_ANSWER_STATUSES:
            await session.execute(
                update(Call)
                .where(
                    Call.call_sid == call_sid,
                    Call.stream_started_at.is_(None),
                    Call.status.not_in(("in-progress", *FINAL_STATUSES)),
                )
                .values(status=status)
            )
        event: dict[str, Any] = {"status": status, "at": utcnow().isoformat()}
        if sequence is not None:
            event["sequence"] = sequence
        if duration is not None:
            event["duration"] = duration
        row.events = [*(row.events or []), event]
        if row.status not in FINAL_STATUSES:
            row.status = status
        return _view(row)


async def record_answered_by(
    sessions: async_sessionmaker[AsyncSession], *, ref: str, answered_by: str
) -> OutboundView | None:
    """Store the answering-machine verdict."""
    async with transaction(sessions) as session:
        row = await session.scalar(select(OutboundCall).where(OutboundCall.ref == ref))
        if row is None:
            return None
        row.answered_by = answered_by
        return _view(row)


async def recent_outbound(
    sessions: async_sessionmaker[AsyncSession], *, limit: int = 50
) -> list[OutboundView]:
    """The latest outbound calls, newest first."""
    async with sessions() as session:
        rows = (
            await session.execute(select(OutboundCall).order_by(OutboundCall.id.desc()).limit(limit))
        ).scalars()
        return [_view(r) for r in rows]


async def delete_outbound_of(session: AsyncSession, phone: str) -> int:
    """Privacy delete inside the caller's delete: outbound records and the do-not-call entry."""
    deleted = 0
    for statement in (
        delete(OutboundCall).where(OutboundCall.to_number == phone),
        delete(DoNotCall).where(DoNotCall.phone == phone),
    ):
        result = await session.execute(statement.execution_options(synchronize_session=False))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
