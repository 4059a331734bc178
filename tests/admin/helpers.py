"""Rows the admin tests insert directly: a finished call with timed turns and tool calls, a live call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Call, Caller, CallTurn

TURN_MARKS = [
    {
        "caller_stopped": 4000,
        "stt_final": 4180,
        "llm_first_token": 4530,
        "tts_first_audio": 4690,
        "first_audio_sent": 4720,
    },
    {
        "caller_stopped": 12000,
        "stt_final": 12250,
        "llm_first_token": 12900,
        "tts_first_audio": 13050,
        "first_audio_sent": 13100,
    },
]

# as ``ToolResult.record()`` stores it: Tuesday 8 December 2026, 10:00 in the business's time zone
BOOKING = {
    "id": "call_booking",
    "name": "book_appointment",
    "arguments": {"start": "2026-12-08T10:00", "name": "Maria Lopez", "reason": "call-back"},
    "ok": True,
    "result": {"appointment_id": 1, "starts_at": "Tuesday 8 December at 10:00"},
    "error": None,
}
BOOKING_SENTENCE = "Booked Tue 10:00 for Maria Lopez"


async def insert_calls(runtime: Runtime) -> None:
    """CA-done (ended, 4 turns, 2 timed, a tool call) from +15551230001 and CA-live (in progress)."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    async with transaction(runtime.sessions) as s:
        caller = Caller(phone="+15551230001", name="Maria Lopez")
        done = Call(
            call_sid="CA-done",
            caller=caller,
            from_number="+15551230001",
            to_number="+15550000000",
            status="completed",
            started_at=start,
            ended_at=start + timedelta(seconds=42),
            end_reason="caller-hangup",
            summary="Asked about Saturday hours.",
        )
        done.turns = [
            CallTurn(seq=0, role="caller", text="Are you open on Saturday?"),
            CallTurn(seq=1, role="agent", text="Yes, from ten to noon.", marks=TURN_MARKS[0]),
            CallTurn(seq=2, role="caller", text="Book me a call-back please."),
            CallTurn(
                seq=3,
                role="agent",
                text="Done, we will call you",
                planned_text="Done, we will call you at ten.",
                interrupted=True,
                marks=TURN_MARKS[1],
                tool_calls=[BOOKING],
            ),
        ]
        s.add(done)
        s.add(Call(call_sid="CA-live", from_number="+15559990000", status="in-progress", started_at=start))
        s.add(
            Call(
                call_sid="chat-1",
                from_number="web-visitor",
                direction="chat",
                status="in-progress",
                started_at=start - timedelta(minutes=5),
            )
        )
