"""``book_appointment``: book a slot inside business hours that nobody else has; else offer the nearest."""

from __future__ import annotations

import asyncio
import weakref
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import select, text, update

from phone_agent.brain.builtins._common import db
from phone_agent.brain.hours import SEARCH_DAYS, nearest_free_slots, overlaps, spoken_time
from phone_agent.brain.tools import Tool, ToolContext, ToolRefused
from phone_agent.errors import ToolError
from phone_agent.notifications import OwnerEvent, notify_owner
from phone_agent.opening_hours import parse_hours
from phone_agent.storage.callers import caller_id
from phone_agent.storage.inbox import is_callback
from phone_agent.storage.tables import Appointment, utcnow

BOOKING_LOCK = 4_242_001  # PostgreSQL advisory lock serialising check-then-insert of bookings
_local_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _booking_lock() -> asyncio.Lock:
    """This process's booking lock (SQLite reads outside a transaction, so check-then-insert races)."""
    loop = asyncio.get_running_loop()
    lock = _local_locks.get(loop)
    if lock is None:
        lock = _local_locks[loop] = asyncio.Lock()
    return lock


class BookAppointmentArgs(BaseModel):
    """Arguments of book_appointment."""

    start: str = Field(
        description="Local start date and time in the business time zone, ISO 8601, e.g. 2026-12-01T10:30."
    )
    name: str | None = Field(None, description="The caller's name, if known.")
    reason: str | None = Field(None, description="What the appointment is for, in a few words.")
    duration_minutes: int = Field(30, ge=10, le=240, description="Length in minutes.")


async def book_appointment(ctx: ToolContext, args: BookAppointmentArgs) -> dict[str, object]:
    """Store the appointment, or refuse with the nearest free slots."""
    tz = ZoneInfo(ctx.settings.timezone)
    hours = parse_hours(ctx.settings.business_hours)
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError as exc:
        raise ToolError(f"{args.start!r} is not a date and time like 2026-12-01T10:30.") from exc
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    now = ctx.now()
    async with _booking_lock(), db(ctx) as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOKING_LOCK})
        rows = await session.execute(
            select(Appointment.starts_at, Appointment.duration_minutes).where(
                Appointment.status == "booked",
                Appointment.starts_at >= min(start, now) - timedelta(days=1),
                Appointment.starts_at <= max(start, now) + timedelta(days=2 * SEARCH_DAYS + 1),
            )
        )
        taken = [(row.starts_at, row.duration_minutes) for row in rows]
        problem = None
        if start <= now:
            problem = "That time has already passed."
        elif not hours.is_open(start, args.duration_minutes, tz):
            problem = f"That is outside business hours ({ctx.settings.business_hours})."
        elif overlaps(start, args.duration_minutes, taken):
            problem = "That time is already taken."
        if problem:
            free = nearest_free_slots(hours, tz, start, args.duration_minutes, taken, now=now)
            raise ToolRefused(
                f"{problem} Offer the caller one of the alternatives.",
                requested=spoken_time(start, tz),
                alternatives=[spoken_time(slot, tz) for slot in free],
                alternatives_iso=[slot.astimezone(tz).isoformat(timespec="minutes") for slot in free],
            )
        name = args.name or ctx.caller_name
        appointment = Appointment(
            caller_id=await caller_id(session, ctx.caller_phone),
            call_id=ctx.call_id,
            phone=ctx.caller_phone,
            name=name,
            starts_at=start,
            duration_minutes=args.duration_minutes,
            reason=args.reason,
        )
        session.add(appointment)
        await session.flush()
    when = spoken_time(start, tz)
    await _tell_owner(ctx, appointment, when)
    return {
        "appointment_id": appointment.id,
        "starts_at": when,
        "confirmation": f"Booked{' ' + name if name else ''} for {when}.",
    }


async def _tell_owner(ctx: ToolContext, appointment: Appointment, when: str) -> None:
    """Notify the owner of the booking in the background (the caller hears the confirmation now)."""
    what = "Callback request" if is_callback(appointment.reason) else "Booking"
    who = appointment.name or "a caller"
    phone = f" ({appointment.phone})" if appointment.phone else ""
    event = OwnerEvent(
        kind="booking",
        subject=f"{ctx.settings.business_name}: {what.lower()} from {who} for {when}",
        text=f"{what}: {who}{phone}, {when}, {appointment.duration_minutes} min."
        + (f" Reason: {appointment.reason}" if appointment.reason else ""),
        call_sid=ctx.call_sid,
        caller=appointment.phone,
    )

    async def send() -> None:
        if (await notify_owner(ctx, event)).delivered:
            async with db(ctx) as session:
                await session.execute(
                    update(Appointment).where(Appointment.id == appointment.id).values(notified_at=utcnow())
                )

    if ctx.tasks is None or ctx.tasks.spawn(send(), name=f"notify-booking-{appointment.id}") is None:
        await send()


BOOK_APPOINTMENT = Tool(
    name="book_appointment",
    description=(
        "Book an appointment or call-back at a given local time. Refuses times outside business "
        "hours or already taken and then lists the nearest free times to offer instead."
    ),
    args_model=BookAppointmentArgs,
    handler=book_appointment,
)
