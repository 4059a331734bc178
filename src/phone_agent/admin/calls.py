"""Calls for the admin page: live calls, the call log, one call's transcript, and its latency waterfall.

Turn timing comes from ``call_turns.marks`` (ms since the call started): caller_stopped →
stt_final → llm_first_token → tts_first_audio → first_audio_sent. The waterfall lays each turn's
stages out on one axis so the owner sees where the time of every answer went.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from phone_agent.memory.summary import OUTCOMES, outcome_label
from phone_agent.storage.analytics import answer_latency_ms, percentile
from phone_agent.storage.tables import Call, Caller, CallTurn, OutboundCall

__all__ = ["call_detail", "call_log", "call_row", "latency_summary", "live_calls", "percentile", "waterfall"]

MARKS = ("caller_stopped", "stt_final", "llm_first_token", "tts_first_audio", "first_audio_sent")
STAGES = (
    ("stt", "STT final", "caller_stopped", "stt_final"),
    ("llm", "LLM first token", "stt_final", "llm_first_token"),
    ("tts", "TTS first audio", "llm_first_token", "tts_first_audio"),
    ("send", "Audio sent", "tts_first_audio", "first_audio_sent"),
)


def caller_phone_of(call: Call) -> str | None:
    """The number of the person on the other end (the caller, or whom an outbound call rang)."""
    return call.to_number if call.direction.startswith("outbound") else call.from_number


async def caller_names(session: AsyncSession, calls: list[Call]) -> dict[str, str]:
    """Names of the callers of ``calls`` that memory knows, by phone number (one query)."""
    phones = {p for p in map(caller_phone_of, calls) if p}
    if not phones:
        return {}
    rows = await session.execute(select(Caller.phone, Caller.name).where(Caller.phone.in_(phones)))
    return {phone: name for phone, name in rows.all() if name}


def call_row(call: Call, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A call as the page and the JSON API show it (with the caller's name when ``names`` has it)."""
    duration = (call.ended_at - call.started_at).total_seconds() if call.ended_at else None
    phone = caller_phone_of(call)
    return {
        "call_sid": call.call_sid,
        "caller_phone": phone,
        "caller_name": (names or {}).get(phone or ""),
        "caller_link": f"/admin/callers/{quote(phone)}" if phone and phone.startswith("+") else None,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "direction": call.direction,
        "channel": "chat" if call.direction == "chat" else call.channel,  # phone | chat | web
        "status": call.status,
        "started_at": call.started_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_seconds": round(duration, 1) if duration is not None else None,
        "end_reason": call.end_reason,
        "summary": call.summary,
        "intent": call.intent,
        "outcome": call.outcome,
        "outcome_label": outcome_label(call.outcome),
        "routing_rule": call.routing_rule,  # the rule that fired last (None: no rule fired)
        "routing_events": call.routing_events or [],
        "tags": call.tags or [],
    }


async def live_calls(session: AsyncSession) -> list[dict[str, Any]]:
    """Phone calls that have not ended, newest first (chat conversations are not calls in progress)."""
    rows = await session.execute(
        select(Call).where(Call.ended_at.is_(None), Call.direction != "chat").order_by(Call.started_at.desc())
    )
    calls = list(rows.scalars())
    names = await caller_names(session, calls)
    return [call_row(c, names) for c in calls]


async def call_log(
    session: AsyncSession, *, phone: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Ended calls and chat conversations, newest first; optionally only those whose number, summary,
    intent or outcome contains ``phone`` (any words the owner searches for)."""
    stmt = select(Call).where(or_(Call.ended_at.is_not(None), Call.direction == "chat"))
    if phone:
        pattern = f"%{phone.strip().lower()}%"
        outcomes = [key for key in OUTCOMES if phone.strip().lower() in outcome_label(key).lower()]
        stmt = stmt.where(
            Call.from_number.like(pattern)
            | Call.to_number.like(pattern)
            | func.lower(Call.summary).like(pattern)
            | func.lower(Call.intent).like(pattern)
            | Call.outcome.in_(outcomes)
        )
    rows = await session.execute(stmt.order_by(Call.started_at.desc()).limit(limit))
    calls = list(rows.scalars())
    names = await caller_names(session, calls)
    return [call_row(c, names) for c in calls]


def turn_row(turn: CallTurn) -> dict[str, Any]:
    """A transcript line."""
    return {
        "seq": turn.seq,
        "role": turn.role,
        "text": turn.text,
        "planned_text": turn.planned_text,
        "interrupted": turn.interrupted,
        "tool_calls": turn.tool_calls or [],
        "marks": turn.marks or {},
    }


async def call_detail(session: AsyncSession, call_sid: str) -> dict[str, Any] | None:
    """A call with its transcript, tool calls and waterfall; None when unknown."""
    call = (
        await session.execute(select(Call).where(Call.call_sid == call_sid).options(selectinload(Call.turns)))
    ).scalar_one_or_none()
    if call is None:
        return None
    turns = [turn_row(t) for t in call.turns]
    placed = await session.scalar(select(OutboundCall).where(OutboundCall.call_sid == call_sid))
    return {
        **call_row(call, await caller_names(session, [call])),
        "turns": turns,
        "waterfall": waterfall(turns),
        "outbound": (  # a call the agent placed: why, what answered, Twilio's status callbacks
            {"purpose": placed.purpose, "answered_by": placed.answered_by, "events": list(placed.events)}
            if placed is not None
            else None
        ),
    }


@dataclass(frozen=True)
class Segment:
    """One stage of one turn, in ms relative to the moment the caller stopped."""

    stage: str
    label: str
    start_ms: float
    end_ms: float


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def waterfall(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per timed turn: its stages (start/end relative to caller_stopped) and the voice-to-voice total."""
    rows = []
    for turn in turns:
        marks = {k: _number(turn["marks"].get(k)) for k in MARKS}
        origin = marks["caller_stopped"]
        if origin is None:
            continue
        segments = []
        for stage, label, start_key, end_key in STAGES:
            start, end = marks[start_key], marks[end_key]
            if start is not None and end is not None and end >= start:
                segments.append(Segment(stage, label, start - origin, end - origin).__dict__)
        if not segments:
            continue
        sent = marks["first_audio_sent"]
        rows.append(
            {
                "seq": turn["seq"],
                "text": turn["text"],
                "segments": segments,
                "total_ms": sent - origin if sent is not None else max(s["end_ms"] for s in segments),
            }
        )
    return rows


async def latency_summary(session: AsyncSession, *, recent: int = 200) -> dict[str, Any]:
    """Voice-to-voice (caller stopped → first audio sent) p50/p95 over the most recent timed turns."""
    rows = await session.execute(
        select(CallTurn.marks).order_by(CallTurn.created_at.desc(), CallTurn.id.desc()).limit(recent * 2)
    )
    totals: list[float] = []
    for (marks,) in rows:
        if (total := answer_latency_ms(marks)) is not None:
            totals.append(total)
        if len(totals) >= recent:
            break
    return {
        "turns": len(totals),
        "voice_to_voice_p50_ms": percentile(totals, 50),
        "voice_to_voice_p95_ms": percentile(totals, 95),
    }
