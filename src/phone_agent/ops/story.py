"""One call's story from the database (`phone-agent logs CALL_SID`): who called, every turn with its
timing, tools used, messages and appointments taken, how it ended; plus its lines from the log file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from phone_agent.ops.metrics import TURN_STAGES
from phone_agent.storage.tables import Appointment, Call, Message


async def call_story(session: AsyncSession, call_sid: str) -> dict[str, Any] | None:
    """The story of ``call_sid`` as plain data (None when the call is unknown)."""
    call = (
        await session.execute(
            select(Call)
            .where(Call.call_sid == call_sid)
            .options(selectinload(Call.turns), selectinload(Call.caller))
        )
    ).scalar_one_or_none()
    if call is None:
        return None
    messages = (await session.execute(select(Message).where(Message.call_id == call.id))).scalars().all()
    appointments = (
        (await session.execute(select(Appointment).where(Appointment.call_id == call.id))).scalars().all()
    )
    ended = call.ended_at
    return {
        "call_sid": call.call_sid,
        "stream_sid": call.stream_sid,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "caller": {"phone": call.caller.phone, "name": call.caller.name} if call.caller else None,
        "status": call.status,
        "started_at": call.started_at.isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "duration_seconds": round((ended - call.started_at).total_seconds(), 1) if ended else None,
        "end_reason": call.end_reason,
        "summary": call.summary,
        "turns": [
            {
                "seq": t.seq,
                "role": t.role,
                "text": t.text,
                "planned_text": t.planned_text,
                "interrupted": t.interrupted,
                "tool_calls": t.tool_calls,
                "marks": t.marks or {},
                "stages_ms": stage_durations(t.marks or {}),
                "at": t.created_at.isoformat(),
                "offset_seconds": round((t.created_at - call.started_at).total_seconds(), 1),
            }
            for t in call.turns
        ],
        "messages": [{"kind": m.kind, "body": m.body, "status": m.status} for m in messages],
        "appointments": [
            {"starts_at": a.starts_at.isoformat(), "reason": a.reason, "status": a.status}
            for a in appointments
        ],
    }


def stage_durations(marks: dict[str, Any]) -> dict[str, int]:
    """Milliseconds per stage (stt, llm, tts, send, voice_to_voice) from a turn's timing marks."""
    out: dict[str, int] = {}
    for stage, (start, end) in TURN_STAGES.items():
        if isinstance(marks.get(start), int | float) and isinstance(marks.get(end), int | float):
            out[stage] = int(marks[end] - marks[start])
    return out


def log_lines(log_file: str | None, call_sid: str, *, limit: int = 500) -> list[str]:
    """Lines of the log file that carry this call SID (every call line does; see ops/logging.py)."""
    if not log_file or not Path(log_file).exists():
        return []
    with Path(log_file).open(encoding="utf-8", errors="replace") as handle:
        found = [line.rstrip("\n") for line in handle if call_sid in line]
    return found[-limit:]


def _clock(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC") if iso else "-"


def render_story(story: dict[str, Any], lines: list[str] | None = None) -> str:
    """The story as text for a terminal."""
    caller = story["caller"] or {}
    who = f"{caller.get('name') or 'unknown caller'} ({story['from'] or '?'})"
    out = [
        f"call {story['call_sid']}  {story['direction']}  {who} → {story['to'] or '?'}",
        f"started {_clock(story['started_at'])}  ended {_clock(story['ended_at'])}"
        f"  duration {story['duration_seconds'] if story['duration_seconds'] is not None else '-'} s"
        f"  status {story['status']}  end reason {story['end_reason'] or '-'}",
    ]
    for turn in story["turns"]:
        text = turn["text"] or ""
        if turn["interrupted"]:
            text += "  [interrupted; planned: " + (turn["planned_text"] or "") + "]"
        out.append(f"  +{turn['offset_seconds']:>6.1f}s {turn['role']:<6} {text}")
        for tool in turn["tool_calls"] or []:
            out.append(f"{'':18}tool {tool.get('name', '?')}({tool.get('arguments', '')})")
        if turn["stages_ms"]:
            timing = "  ".join(f"{stage} {ms} ms" for stage, ms in turn["stages_ms"].items())
            out.append(f"{'':18}timing: {timing}")
    for message in story["messages"]:
        out.append(f"  {message['kind']}: {message['body']} ({message['status']})")
    for appointment in story["appointments"]:
        out.append(f"  appointment {appointment['starts_at']}: {appointment['reason'] or ''}")
    if story["summary"]:
        out.append(f"  summary: {story['summary']}")
    if lines:
        out.append("log lines:")
        out.extend(f"  {line}" for line in lines)
    return "\n".join(out)
