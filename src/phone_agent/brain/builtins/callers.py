"""``lookup_caller``: what we know about the caller, plus their upcoming appointments and open messages."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import select

from phone_agent.brain.builtins._common import db
from phone_agent.brain.hours import spoken_time
from phone_agent.brain.tools import Tool, ToolContext, read_memory
from phone_agent.errors import ToolError
from phone_agent.storage.tables import Appointment, Message


class LookupCallerArgs(BaseModel):
    """lookup_caller takes no arguments: it looks up the current caller."""


async def lookup_caller(ctx: ToolContext, _args: LookupCallerArgs) -> dict[str, object]:
    """Profile and memories (from the memory store) and open items (from the database)."""
    if not ctx.caller_phone:
        raise ToolError("The caller's number is unknown, so there is nothing to look up.")
    result: dict[str, object] = {"phone": ctx.caller_phone}
    if ctx.memory is not None:
        try:
            context = await read_memory(ctx.memory.caller_context(ctx.caller_phone), what="Caller memory")
        except ToolError as exc:  # the appointments and messages below still answer
            result["memory"] = str(exc)
        else:
            result.update(
                known=context.known,
                name=context.name,
                profile=context.profile,
                memories=[item.content for item in context.memories],
            )
    tz = ZoneInfo(ctx.settings.timezone)
    async with db(ctx) as session:
        appointments = await session.scalars(
            select(Appointment)
            .where(
                Appointment.phone == ctx.caller_phone,
                Appointment.status == "booked",
                Appointment.starts_at >= ctx.now(),
            )
            .order_by(Appointment.starts_at)
        )
        messages = await session.scalars(
            select(Message)
            .where(Message.phone == ctx.caller_phone, Message.kind == "message", Message.status != "done")
            .order_by(Message.created_at)
        )
        result["upcoming_appointments"] = [
            {"id": a.id, "when": spoken_time(a.starts_at, tz), "reason": a.reason} for a in appointments
        ]
        result["open_messages"] = [{"id": m.id, "message": m.body} for m in messages]
    return result


LOOKUP_CALLER = Tool(
    name="lookup_caller",
    description="Look up the caller: name, what we remember, upcoming appointments and open messages.",
    args_model=LookupCallerArgs,
    handler=lookup_caller,
)
