"""The owner hears of bookings, missed transfers and the day (digest) by SMS (Twilio fake) and e-mail
(real SMTP server); a caller whose call was abandoned gets one text when the owner wants that."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.brain.builtins import default_registry
from phone_agent.notifications.digest import build_digest, next_run, run_daily_digest, send_digest
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Appointment, Call, Message
from phone_agent.tasks import TaskOwner
from tests.fakes.smtp import FakeSMTP
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.notifications.test_notify_owner import OWNER_EMAIL, OWNER_SMS, notify_settings

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
CALLER = "+15551112222"
PUBLIC = "https://agent.example.com"


def owner_sms(twilio: FakeTwilioREST, to: str = OWNER_SMS) -> list[str]:
    return [
        r.form["Body"] for r in twilio.requests if r.path.endswith("/Messages.json") and r.form["To"] == to
    ]


@pytest.fixture
async def runtime(tmp_path: Path, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(notify_settings(tmp_path, fake_twilio, fake_smtp), "all")
    await upgrade(runtime.engine)
    yield runtime
    await runtime.close()


async def test_a_booking_notifies_the_owner_once_in_the_background(
    runtime: Runtime, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    tasks = TaskOwner("test")
    services = runtime.current
    ctx = services.tool_context(caller_phone=CALLER, tasks=tasks, clock=lambda: NOW)
    args = {"start": "2026-11-30T10:30", "name": "Dana Reyes", "reason": "Please call back about the claim"}
    result = await default_registry().run("book_appointment", args, ctx)
    assert json.loads(result.content())["ok"] is True
    for _ in range(100):
        if fake_smtp.emails and owner_sms(fake_twilio):
            break
        await asyncio.sleep(0.05)
    (sms,) = owner_sms(fake_twilio)
    assert sms.startswith("our office: callback request from Dana Reyes for Monday")
    assert "Reason: Please call back about the claim" in sms
    (email,) = fake_smtp.emails
    assert email.rcpt_tos == [OWNER_EMAIL] and "callback request from Dana Reyes" in email.subject
    for _ in range(50):
        async with transaction(runtime.sessions) as session:
            booked = (await session.execute(select(Appointment))).scalar_one()
        if booked.notified_at is not None:
            break
        await asyncio.sleep(0.05)
    assert booked.notified_at is not None
    await tasks.aclose()


def test_a_transfer_nobody_answers_notifies_the_owner(
    tmp_path: Path, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    settings = notify_settings(
        tmp_path,
        fake_twilio,
        fake_smtp,
    )
    form = {"CallSid": "CA-t1", "From": CALLER, "DialCallStatus": "no-answer"}
    path = "/phone/transfer/done"
    signature = RequestValidator(fake_twilio.auth_token).compute_signature(PUBLIC + path, form)
    with TestClient(create_app(settings)) as client:
        answer = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200 and "<Record" in answer.text
        for _ in range(100):
            if fake_smtp.emails and owner_sms(fake_twilio):
                break
            time.sleep(0.05)
        answered = {**form, "DialCallStatus": "completed"}
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(PUBLIC + path, answered)
        assert client.post(path, data=answered, headers={"X-Twilio-Signature": signature}).status_code == 200
    (sms,) = owner_sms(fake_twilio)  # the answered transfer told nobody
    assert sms.startswith(
        f"our office: missed transfer from {CALLER}: A call was transferred to +15557654321"
    )
    (email,) = fake_smtp.emails
    assert email.subject == f"our office: missed transfer from {CALLER}" and "Call: CA-t1" in email.text


async def seed_day(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as s:
        started = NOW - timedelta(hours=2)
        call = Call(call_sid="CA-d1", from_number=CALLER, status="completed", started_at=started,
                    ended_at=started + timedelta(seconds=30), outcome="message_taken",
                    summary="Dana asked for a call back.")  # fmt: skip
        s.add(call)
        await s.flush()
        s.add(
            Message(
                call_id=call.id, kind="message", phone=CALLER, name="Dana", body="Call me about the invoice"
            )
        )
        s.add(
            Appointment(phone=CALLER, name="Dana", reason="policy review", starts_at=NOW + timedelta(hours=3))
        )


async def test_the_daily_digest_is_emailed_once_a_day(
    runtime: Runtime, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    await seed_day(runtime)
    settings = runtime.current.settings
    async with runtime.sessions() as session:
        subject, text = await build_digest(session, settings, now=NOW)
    assert subject == "our office daily digest: 1 call(s), 2 open"
    assert "Outcomes over the last two days: 1 message taken." in text
    assert "- Message from Dana: Call me about the invoice" in text
    assert "- Mon 12:00 Dana: policy review" in text

    assert await send_digest(settings, runtime.sessions, now=NOW) is True
    assert await send_digest(settings, runtime.sessions, now=NOW + timedelta(hours=1)) is False  # one a day
    (email,) = fake_smtp.emails
    assert email.subject == subject and email.rcpt_tos == [OWNER_EMAIL]
    assert owner_sms(fake_twilio) == []  # e-mail only
    off = settings.model_copy(update={"notify_events": "message,voicemail"})
    assert await send_digest(off, runtime.sessions, now=NOW + timedelta(days=1)) is False


async def test_the_digest_loop_waits_for_the_digest_hour(runtime: Runtime, fake_smtp: FakeSMTP) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 1:
            raise asyncio.CancelledError  # stop after one round

    with pytest.raises(asyncio.CancelledError):
        await run_daily_digest(lambda: runtime.current.settings, runtime.sessions, sleep=sleep)
    assert 0 < waits[0] <= 24 * 3600 and len(fake_smtp.emails) == 1
    assert next_run(NOW, 18, "America/New_York") == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert next_run(NOW, 8, "America/New_York") == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


async def test_an_abandoned_call_texts_the_caller_once_when_asked_to(
    tmp_path: Path, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    settings = notify_settings(
        tmp_path, fake_twilio, fake_smtp, PHONE_AGENT_TEXT_CALLER_AFTER_MISSED_CALL="true"
    )
    runtime = Runtime.create(settings, "all")
    await upgrade(runtime.engine)
    try:
        async with transaction(runtime.sessions) as s:
            s.add(Call(call_sid="CA-a1", from_number=CALLER, status="completed", ended_at=NOW))
            s.add(Call(call_sid="CA-a2", from_number="+15551113333", status="completed", ended_at=NOW,
                       direction="outbound"))  # fmt: skip
        for sid in ("CA-a1", "CA-a1", "CA-a2"):
            await runtime.current.learn_after_call(sid)
        assert owner_sms(fake_twilio, to=CALLER) == [
            "Sorry we missed you at our office. Call us back any time, or reply to this text."
        ]
        assert owner_sms(fake_twilio, to="+15551113333") == []  # only the callers of inbound calls
        async with transaction(runtime.sessions) as s:
            kinds = list((await s.execute(select(Message.kind, Message.phone))).all())
        assert kinds == [("sms", CALLER)]
    finally:
        await runtime.close()


async def test_no_text_to_the_caller_by_default(runtime: Runtime, fake_twilio: FakeTwilioREST) -> None:
    async with transaction(runtime.sessions) as s:
        s.add(Call(call_sid="CA-a3", from_number=CALLER, status="completed", ended_at=NOW))
    await runtime.current.learn_after_call("CA-a3")
    assert owner_sms(fake_twilio, to=CALLER) == []
