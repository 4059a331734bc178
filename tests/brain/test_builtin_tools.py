"""Built-in tools against a real database (SQLite and PostgreSQL) and the Twilio REST fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from phone_agent.brain import tools as tools_module
from phone_agent.brain.builtins import default_registry
from phone_agent.brain.tools import ToolContext
from phone_agent.memory.base import CallerContext, MemoryItem
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Appointment, Message
from phone_agent.telephony.control import CallControl
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
CALLER = "+15551112222"
ACCOUNT = "/2010-04-01/Accounts/{sid}"


class OneCallerMemory:
    """A tiny MemoryStore holding one caller."""

    async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
        if phone != CALLER:
            return CallerContext(phone=phone)
        return CallerContext(phone=phone, name="Dana", known=True, memories=[MemoryItem(content="Has a dog")])


@pytest.fixture
async def rt(tmp_path: Path, fake_twilio: FakeTwilioREST) -> AsyncIterator[Runtime]:
    settings = twilio_settings(tmp_path, fake_twilio, PHONE_AGENT_OWNER_SMS_NUMBER="+15550001111")
    runtime = Runtime.create(settings, "all")
    await upgrade(runtime.engine)
    yield runtime
    await runtime.close()


@pytest.fixture
async def ctx(rt: Runtime) -> AsyncIterator[ToolContext]:
    control = CallControl(rt.current.settings)
    yield ToolContext(
        settings=rt.current.settings,
        sessions=rt.sessions,
        control=control,
        memory=OneCallerMemory(),  # type: ignore[arg-type]
        caller_phone=CALLER,
        clock=lambda: NOW,
    )
    await control.aclose()


async def book(ctx: ToolContext, start: str, name: str = "Dana") -> dict:
    result = await default_registry().run("book_appointment", {"start": start, "name": name}, ctx)
    return json.loads(result.content())


async def appointments(rt: Runtime) -> list[tuple[str, str | None, str | None]]:
    async with transaction(rt.sessions) as session:
        rows = await session.scalars(select(Appointment).order_by(Appointment.starts_at))
        return [(a.starts_at.isoformat(), a.name, a.phone) for a in rows]


async def test_booking_on_both_databases(
    tmp_path: Path, fake_twilio: FakeTwilioREST, database_url: str
) -> None:
    settings = twilio_settings(tmp_path, fake_twilio, DATABASE_URL=database_url)
    runtime = Runtime.create(settings, "all")
    await upgrade(runtime.engine)
    try:
        ctx = ToolContext(
            settings=settings, sessions=runtime.sessions, caller_phone=CALLER, clock=lambda: NOW
        )
        first = await book(ctx, "2026-12-01T10:00")
        assert first["ok"] and first["confirmation"] == "Booked Dana for Tuesday 1 December at 10:00."
        taken = await book(ctx, "2026-12-01T10:15", name="Sam")  # overlaps 10:00-10:30
        assert taken == {
            "ok": False,
            "error": "That time is already taken. Offer the caller one of the alternatives.",
            "requested": "Tuesday 1 December at 10:15",
            "alternatives": [
                "Tuesday 1 December at 09:30",
                "Tuesday 1 December at 10:30",
                "Tuesday 1 December at 11:00",
            ],
            "alternatives_iso": [
                "2026-12-01T09:30-05:00",
                "2026-12-01T10:30-05:00",
                "2026-12-01T11:00-05:00",
            ],
        }
        assert await appointments(runtime) == [("2026-12-01T15:00:00+00:00", "Dana", CALLER)]
    finally:
        await runtime.close()


async def test_booking_refuses_closed_and_past_times(ctx: ToolContext, rt: Runtime) -> None:
    saturday = await book(ctx, "2026-12-05T10:00")
    assert saturday["error"].startswith("That is outside business hours (Mon-Fri 09:00-17:00).")
    assert saturday["alternatives"] == [
        "Friday 4 December at 15:30",
        "Friday 4 December at 16:00",
        "Friday 4 December at 16:30",
    ]
    past = await book(ctx, "2026-11-27T10:00")
    assert past["error"].startswith("That time has already passed.")
    assert past["alternatives"][0] == "Monday 30 November at 09:30"
    assert await appointments(rt) == []


async def test_send_sms_posts_to_twilio_and_is_recorded(
    ctx: ToolContext, rt: Runtime, fake_twilio: FakeTwilioREST
) -> None:
    result = await default_registry().run("send_sms", {"body": "We are at 1 Main St."}, ctx)
    assert result.ok, result.error
    (request,) = fake_twilio.requests
    assert (request.method, request.path) == (
        "POST",
        ACCOUNT.format(sid=fake_twilio.account_sid) + "/Messages.json",
    )
    assert request.form == {"To": CALLER, "From": "+15005550006", "Body": "We are at 1 Main St."}
    async with transaction(rt.sessions) as session:
        row = await session.scalar(select(Message))
    assert row is not None
    assert (row.kind, row.phone, row.body, row.sms_sid) == (
        "sms",
        CALLER,
        "We are at 1 Main St.",
        result.data["sms_sid"],
    )


async def test_take_message_is_stored_and_texted_to_the_owner(
    ctx: ToolContext, rt: Runtime, fake_twilio: FakeTwilioREST
) -> None:
    result = await default_registry().run(
        "take_message", {"message": "Please call me back", "name": "Dana"}, ctx
    )
    assert result.ok and result.data["forwarded_by_sms"] is True
    (request,) = fake_twilio.requests
    assert request.path.endswith("/Messages.json")
    assert request.form == {
        "To": "+15550001111",
        "From": "+15005550006",
        "Body": f"Message for our office from Dana ({CALLER}): Please call me back",
    }
    # Twilio down: the message is still kept, marked new, and the model hears why it was not texted.
    fake_twilio.fail_next(1, status=503)
    second = await default_registry().run("take_message", {"message": "Second"}, ctx)
    assert (
        second.ok
        and second.data["forwarded_by_sms"] is False
        and "send SMS failed" in second.data["sms_error"]
    )
    async with transaction(rt.sessions) as session:
        rows = (await session.scalars(select(Message).order_by(Message.id))).all()
    assert [(m.kind, m.body, m.status, m.phone) for m in rows] == [
        ("message", "Please call me back", "sent", CALLER),
        ("message", "Second", "new", CALLER),
    ]


async def test_end_call_hangs_up_only_after_the_goodbye_played(
    ctx: ToolContext, fake_twilio: FakeTwilioREST
) -> None:
    call = fake_twilio.add_call(from_=CALLER)
    ctx.channel, ctx.call_sid = "phone", call["sid"]
    result = await default_registry().run("end_call", {"reason": "caller said bye"}, ctx)
    assert result.ok and ctx.ended and ctx.pending_action()
    assert fake_twilio.requests == []  # the goodbye is still playing
    await ctx.speech_finished()
    (request,) = fake_twilio.requests
    assert (request.method, request.path, request.form) == (
        "POST",
        ACCOUNT.format(sid=fake_twilio.account_sid) + f"/Calls/{call['sid']}.json",
        {"Status": "completed"},
    )
    assert not ctx.pending_action()


async def test_end_call_falls_back_to_hanging_up_without_a_speech_end(
    ctx: ToolContext, fake_twilio: FakeTwilioREST, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools_module, "AFTER_SPEECH_FALLBACK_SECONDS", 0.05)
    call = fake_twilio.add_call(from_=CALLER)
    ctx.channel, ctx.call_sid = "phone", call["sid"]
    await default_registry().run("end_call", {}, ctx)
    assert ctx._fallback is not None
    await ctx._fallback
    assert [r.form for r in fake_twilio.requests] == [{"Status": "completed"}]


async def test_end_call_in_a_chat_only_marks_it_ended(ctx: ToolContext, fake_twilio: FakeTwilioREST) -> None:
    result = await default_registry().run("end_call", {"reason": "done"}, ctx)
    assert result.ok and (ctx.ended, ctx.end_reason) == (True, "done")
    assert not ctx.pending_action() and fake_twilio.requests == []


async def test_transfer_call_updates_the_call_after_speech(
    ctx: ToolContext, fake_twilio: FakeTwilioREST
) -> None:
    refused = await default_registry().run("transfer_call", {"reason": "billing"}, ctx)
    assert refused.error == "This is not a phone call, so it cannot be transferred; offer to take a message."
    call = fake_twilio.add_call(from_=CALLER)
    order: list[str] = []

    async def before_transfer() -> None:  # the pipeline disarms its own hang-up here
        order.append(f"before transfer, {len(fake_twilio.requests)} requests sent, ended={ctx.ended}")

    ctx.channel, ctx.call_sid, ctx.before_transfer = "phone", call["sid"], before_transfer
    result = await default_registry().run("transfer_call", {"reason": "billing"}, ctx)
    assert result.ok and fake_twilio.requests == []
    await ctx.speech_finished()
    assert order == ["before transfer, 0 requests sent, ended=True"]
    (request,) = fake_twilio.requests
    assert (request.method, request.path) == (
        "POST",
        ACCOUNT.format(sid=fake_twilio.account_sid) + f"/Calls/{call['sid']}.json",
    )
    assert list(request.form) == ["Twiml"]
    assert (
        '<Number url="https://agent.example.com/phone/transfer/whisper?reason=billing">+15557654321</Number>'
        in request.form["Twiml"]
    )
    assert (ctx.ended, ctx.end_reason) == (True, "transferred")


async def test_lookup_caller_gives_memory_and_open_items(ctx: ToolContext) -> None:
    await book(ctx, "2026-12-02T11:00")
    await default_registry().run("take_message", {"message": "Call me"}, ctx)
    result = await default_registry().run("lookup_caller", {}, ctx)
    assert result.data == {
        "phone": CALLER,
        "known": True,
        "name": "Dana",
        "profile": {},
        "memories": ["Has a dog"],
        "upcoming_appointments": [{"id": 1, "when": "Wednesday 2 December at 11:00", "reason": None}],
        "open_messages": [{"id": 1, "message": "Call me"}],
    }


class HungMemory:
    """A memory service that never answers."""

    async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_lookup_caller_answers_without_a_memory_service_that_hangs(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tools_module, "MEMORY_READ_SECS", 0.2)
    ctx.memory = HungMemory()  # type: ignore[assignment]
    await book(ctx, "2026-12-02T11:00")
    result = await default_registry().run("lookup_caller", {}, ctx)
    assert (
        result.ok
        and result.data["memory"] == "Caller memory is not available right now; carry on without it."
    )
    assert result.data["upcoming_appointments"] == [
        {"id": 1, "when": "Wednesday 2 December at 11:00", "reason": None}
    ]


async def test_concurrent_bookings_of_one_slot_book_it_once(
    tmp_path: Path, fake_twilio: FakeTwilioREST, database_url: str
) -> None:
    settings = twilio_settings(tmp_path, fake_twilio, DATABASE_URL=database_url)
    runtime = Runtime.create(settings, "all")
    await upgrade(runtime.engine)
    try:
        contexts = [
            ToolContext(
                settings=settings,
                sessions=runtime.sessions,
                caller_phone=f"+1555000000{i}",
                clock=lambda: NOW,
            )
            for i in range(4)
        ]
        results = await asyncio.gather(
            *(book(ctx, "2026-12-01T10:00", name=f"C{i}") for i, ctx in enumerate(contexts))
        )
        assert sorted(r["ok"] for r in results) == [False, False, False, True]
        assert len(await appointments(runtime)) == 1
    finally:
        await runtime.close()
