"""CSV downloads for a logged-in owner: ``/admin/export/calls.csv``, ``messages.csv``, ``bookings.csv``.

Times are ISO 8601 in the business's time zone (with the offset). Text a caller or the model wrote
(names, messages, summaries) that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``
first) is written with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.admin import auth
from phone_agent.api.deps import ServicesDep
from phone_agent.errors import NotFoundError
from phone_agent.memory.summary import outcome_label
from phone_agent.storage.inbox import INBOX_MESSAGE_KINDS, is_callback
from phone_agent.storage.tables import Appointment, Call, Message

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"\+[0-9]{6,16}")
MAX_ROWS = 100_000

CALL_COLUMNS = (
    "call_sid", "channel", "direction", "from_number", "to_number", "started_at", "ended_at",
    "duration_seconds", "status", "end_reason", "outcome", "outcome_label", "intent", "summary",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "kind", "created_at", "name", "phone", "body", "call_sid", "done_at", "note",
)  # fmt: skip
BOOKING_COLUMNS = (
    "id", "kind", "starts_at", "duration_minutes", "name", "phone", "reason", "status", "created_at",
    "call_sid", "done_at", "note",
)  # fmt: skip


def safe_text(value: str | None) -> str:
    """Free text as a spreadsheet shows it, never as a formula."""
    text = value or ""
    return "'" + text if text.startswith(FORMULA_START) else text


def safe_phone(value: str | None) -> str:
    """A number as stored (E.164 such as +15551230001 stays as it is); anything else as free text."""
    return value if value and E164.fullmatch(value) else safe_text(value)


def _time(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).isoformat(timespec="seconds") if value else ""


async def _calls(session: AsyncSession, tz: ZoneInfo) -> list[Sequence[Any]]:
    rows = await session.execute(select(Call).order_by(Call.started_at.desc()).limit(MAX_ROWS))
    out: list[Sequence[Any]] = []
    for c in rows.scalars():
        duration = round((c.ended_at - c.started_at).total_seconds(), 1) if c.ended_at else ""
        out.append(
            (
                c.call_sid,
                "chat" if c.direction == "chat" else "call",
                c.direction,
                safe_phone(c.from_number),
                safe_phone(c.to_number),
                _time(c.started_at, tz),
                _time(c.ended_at, tz),
                duration,
                c.status,
                c.end_reason or "",
                c.outcome or "",
                outcome_label(c.outcome),
                safe_text(c.intent),
                safe_text(c.summary),
            )
        )
    return out


async def _messages(session: AsyncSession, tz: ZoneInfo) -> list[Sequence[Any]]:
    rows = await session.execute(
        select(Message, Call.call_sid)
        .outerjoin(Call, Call.id == Message.call_id)
        .where(Message.kind.in_(INBOX_MESSAGE_KINDS))
        .order_by(Message.created_at.desc())
        .limit(MAX_ROWS)
    )
    return [
        (
            m.id,
            m.kind,
            _time(m.created_at, tz),
            safe_text(m.name),
            safe_phone(m.phone),
            safe_text(m.body),
            sid or "",
            _time(m.done_at, tz),
            safe_text(m.owner_note),
        )
        for m, sid in rows
    ]


async def _bookings(session: AsyncSession, tz: ZoneInfo) -> list[Sequence[Any]]:
    rows = await session.execute(
        select(Appointment, Call.call_sid)
        .outerjoin(Call, Call.id == Appointment.call_id)
        .order_by(Appointment.starts_at.desc())
        .limit(MAX_ROWS)
    )
    return [
        (
            a.id,
            "callback" if is_callback(a.reason) else "booking",
            _time(a.starts_at, tz),
            a.duration_minutes,
            safe_text(a.name),
            safe_phone(a.phone),
            safe_text(a.reason),
            a.status,
            _time(a.created_at, tz),
            sid or "",
            _time(a.done_at, tz),
            safe_text(a.owner_note),
        )
        for a, sid in rows
    ]


EXPORTS: dict[str, tuple[tuple[str, ...], Callable[[AsyncSession, ZoneInfo], Any]]] = {
    "calls": (CALL_COLUMNS, _calls),
    "messages": (MESSAGE_COLUMNS, _messages),
    "bookings": (BOOKING_COLUMNS, _bookings),
}


@router.get("/admin/export/{name}.csv")
async def export_csv(name: str, services: ServicesDep) -> Response:
    """One table as CSV (a header row, then newest first)."""
    if name not in EXPORTS:
        raise NotFoundError(f"No export {name!r}; exports are {', '.join(EXPORTS)}.")
    columns, read = EXPORTS[name]
    async with services.sessions() as session:
        rows = await read(session, ZoneInfo(services.settings.timezone))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    headers = {
        "Content-Disposition": f'attachment; filename="{name}.csv"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
