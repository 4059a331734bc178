"""The owner's inbox: messages, voicemails, bookings and callback requests, with their call's summary.

Items are rows of ``messages`` (kinds ``message`` and ``voicemail``; an SMS the agent sent is not
an item) and ``appointments``, addressed as ``(table, id)`` with table ``message`` or
``appointment``. An item is open until the owner marks it done; it is unread until the owner has
opened it, marked it or written a note on it (``seen_at``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.errors import NotFoundError
from phone_agent.storage.db import transaction
from phone_agent.storage.recordings import VOICEMAIL_SOURCE
from phone_agent.storage.tables import Appointment, Call, Caller, CallRecording, Message, utcnow

InboxTable = Literal["message", "appointment"]
InboxState = Literal["open", "done", "all"]
INBOX_MESSAGE_KINDS = ("message", "voicemail")
CALLBACK_WORDS = ("call back", "callback", "call-back", "ring back", "return call")
NOTE_MAX_CHARS = 2000
VOICEMAIL_LENGTH = re.compile(r"\((\d+) s\)")


def is_callback(reason: str | None) -> bool:
    """A booking that asks for a call from the business rather than a visit."""
    text = (reason or "").lower()
    return any(word in text for word in CALLBACK_WORDS)


def _state_filter(model: type[Message] | type[Appointment], state: InboxState) -> Any:
    if state == "open":
        return model.done_at.is_(None)
    if state == "done":
        return model.done_at.is_not(None)
    return True


async def inbox_items(
    session: AsyncSession, *, state: InboxState = "open", limit: int = 100
) -> list[dict[str, Any]]:
    """Items newest first, each with its caller and its call's summary and outcome."""
    messages = await session.execute(
        select(Message, Call, Caller)
        .outerjoin(Call, Call.id == Message.call_id)
        .outerjoin(Caller, Caller.id == Message.caller_id)
        .where(Message.kind.in_(INBOX_MESSAGE_KINDS), _state_filter(Message, state))
        .order_by(Message.created_at.desc())
        .limit(limit)
    )
    bookings = await session.execute(
        select(Appointment, Call, Caller)
        .outerjoin(Call, Call.id == Appointment.call_id)
        .outerjoin(Caller, Caller.id == Appointment.caller_id)
        .where(_state_filter(Appointment, state))
        .order_by(Appointment.created_at.desc())
        .limit(limit)
    )
    items = [_message_item(m, call, caller) for m, call, caller in messages]
    items += [_booking_item(a, call, caller) for a, call, caller in bookings]
    items.sort(key=lambda item: item["created_at"], reverse=True)
    await _voicemail_recordings(session, items)
    return items[:limit]


async def _voicemail_recordings(session: AsyncSession, items: list[dict[str, Any]]) -> None:
    """Give each voicemail the recording its call left (played through ``/admin/recordings/{sid}``)."""
    sids = {i["call_sid"] for i in items if i["kind"] == "voicemail" and i["call_sid"]}
    if not sids:
        return
    rows = await session.execute(
        select(CallRecording.call_sid, CallRecording.recording_sid).where(
            CallRecording.call_sid.in_(sids),
            CallRecording.source == VOICEMAIL_SOURCE,
            CallRecording.status == "completed",
        )
    )
    recordings = dict(rows.all())
    for item in items:
        if item["kind"] == "voicemail" and item["call_sid"] in recordings:
            item["recording_url"] = f"/admin/recordings/{recordings[item['call_sid']]}"


def _common(row: Message | Appointment, call: Call | None, caller: Caller | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "phone": row.phone or (caller.phone if caller else None),
        "name": row.name or (caller.name if caller else None),
        "caller_phone": caller.phone if caller else row.phone,
        "call_sid": call.call_sid if call else None,
        "summary": call.summary if call else None,
        "outcome": call.outcome if call else None,
        "channel": "chat" if call is not None and call.direction == "chat" else "phone",
        "unread": row.seen_at is None and row.done_at is None,
        "done": row.done_at is not None,
        "done_at": row.done_at,
        "note": row.owner_note,
    }


def _message_item(row: Message, call: Call | None, caller: Caller | None) -> dict[str, Any]:
    item = {**_common(row, call, caller), "table": "message", "kind": row.kind, "text": row.body}
    if row.kind == "voicemail":  # "Voicemail (12 s): <recording URL>" + "\nTranscript: ..." when it came
        head, _, transcript = row.body.partition("\nTranscript: ")
        seconds = VOICEMAIL_LENGTH.search(head)
        item.update(
            text="", transcript=transcript.strip() or None, seconds=seconds.group(1) if seconds else None
        )
    return item


def _booking_item(row: Appointment, call: Call | None, caller: Caller | None) -> dict[str, Any]:
    kind = "callback" if is_callback(row.reason) else "booking"
    return {
        **_common(row, call, caller),
        "table": "appointment",
        "kind": kind,
        "text": row.reason or "",
        "starts_at": row.starts_at,
        "duration_minutes": row.duration_minutes,
        "status": row.status,
    }


async def unread_count(session: AsyncSession) -> int:
    """Open items the owner has not seen yet (the header's badge)."""
    messages = await session.scalar(
        select(func.count()).where(
            Message.kind.in_(INBOX_MESSAGE_KINDS), Message.seen_at.is_(None), Message.done_at.is_(None)
        )
    )
    bookings = await session.scalar(
        select(func.count()).where(Appointment.seen_at.is_(None), Appointment.done_at.is_(None))
    )
    return int(messages or 0) + int(bookings or 0)


async def _get(session: AsyncSession, table: InboxTable, item_id: int) -> Message | Appointment | None:
    if table == "message":
        return await session.get(Message, item_id)
    return await session.get(Appointment, item_id)


async def _row(session: AsyncSession, table: InboxTable, item_id: int) -> Message | Appointment:
    row = await _get(session, table, item_id)
    if row is None or (isinstance(row, Message) and row.kind not in INBOX_MESSAGE_KINDS):
        raise NotFoundError(f"No inbox item {table} {item_id}.")
    return row


async def mark_done(
    sessions: async_sessionmaker[AsyncSession], table: InboxTable, item_id: int, *, done: bool = True
) -> None:
    """Mark an item done (or open again); either way it is seen."""
    async with transaction(sessions) as session:
        row = await _row(session, table, item_id)
        now = utcnow()
        row.done_at = now if done else None
        row.seen_at = row.seen_at or now


async def set_note(
    sessions: async_sessionmaker[AsyncSession], table: InboxTable, item_id: int, note: str
) -> None:
    """The owner's note on an item (empty: removed)."""
    async with transaction(sessions) as session:
        row = await _row(session, table, item_id)
        row.owner_note = note.strip()[:NOTE_MAX_CHARS] or None
        row.seen_at = row.seen_at or utcnow()


async def mark_seen(sessions: async_sessionmaker[AsyncSession], items: list[tuple[InboxTable, int]]) -> None:
    """The owner opened these items."""
    if not items:
        return
    now = utcnow()
    async with transaction(sessions) as session:
        for table, item_id in items:
            row = await _get(session, table, item_id)
            if row is not None and row.seen_at is None:
                row.seen_at = now


async def appointments_between(session: AsyncSession, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Bookings starting in ``[start, end)``, earliest first, with caller and call."""
    rows = await session.execute(
        select(Appointment, Call, Caller)
        .outerjoin(Call, Call.id == Appointment.call_id)
        .outerjoin(Caller, Caller.id == Appointment.caller_id)
        .where(Appointment.starts_at >= start, Appointment.starts_at < end)
        .where(or_(Appointment.status != "cancelled", Appointment.status.is_(None)))
        .order_by(Appointment.starts_at)
    )
    return [_booking_item(a, call, caller) for a, call, caller in rows]
