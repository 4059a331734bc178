"""A call's review on its row (summary, intent, outcome) and the rows that show what happened in it.

``memory.summary`` decides what the review says; this module reads and writes the rows. A review
written by the rules never replaces one the LLM wrote (a late webhook must not undo a summary).
"""

from __future__ import annotations

from typing import TypedDict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Appointment, Call, Message


class EvidenceCounts(TypedDict):
    """The rows a call left (``memory.summary.CallEvidence`` takes them as they are)."""

    messages: int
    voicemails: int
    bookings: int
    transferred: bool
    chat: bool


async def evidence_counts(session: AsyncSession, call: Call) -> EvidenceCounts:
    """Messages, voicemails and bookings stored for the call, whether it was transferred or a chat."""
    kinds = dict(
        (
            await session.execute(
                select(Message.kind, func.count()).where(Message.call_id == call.id).group_by(Message.kind)
            )
        ).all()
    )
    bookings = await session.scalar(select(func.count()).where(Appointment.call_id == call.id))
    reason = (call.end_reason or "").lower()
    return {
        "messages": int(kinds.get("message", 0)),
        "voicemails": int(kinds.get("voicemail", 0)),
        "bookings": int(bookings or 0),
        "transferred": reason == "transferred" or reason.endswith("→ transfer"),
        "chat": call.direction == "chat",
    }


async def store_review(
    sessions: async_sessionmaker[AsyncSession],
    *,
    call_sid: str,
    summary: str,
    intent: str | None,
    outcome: str,
    source: str,
) -> bool:
    """Write the review on the call; False when the call is unknown or has the LLM's already."""
    async with transaction(sessions) as session:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None or (source == "rules" and call.summary_source == "llm"):
            return False
        call.summary, call.intent, call.outcome, call.summary_source = summary, intent, outcome, source
        return True


async def awaits_review(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> bool:
    """True for an ended call that never streamed and has no review (nothing else will write one)."""
    async with sessions() as session:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
    return call is not None and call.summary is None and call.stream_started_at is None


async def set_outcome(sessions: async_sessionmaker[AsyncSession], *, call_id: int, outcome: str) -> None:
    """Correct a reviewed call's outcome when a later webhook proves it (e.g. a voicemail)."""
    async with transaction(sessions) as session:
        call = await session.get(Call, call_id)
        if call is not None and call.outcome is not None:
            call.outcome = outcome
