"""The owner's sections over HTTP: inbox (unread badge, done, notes, filters), appointments by day and
week, analytics that match the database, CSV exports that Python's csv reads back, all behind login."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Appointment, Call, Caller, CallTurn, Message
from tests.admin.conftest import PASSWORD, log_in
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings

NOW = datetime.now(UTC)


async def seed(runtime: Runtime) -> None:
    """Three calls (a message, a booking + callback, an abandoned one), a chat, a voicemail."""
    async with transaction(runtime.sessions) as s:
        maria = Caller(phone="+15551230001", name="Maria Lopez")
        s.add(maria)
        await s.flush()
        calls = [
            Call(
                call_sid="CA-msg",
                caller_id=maria.id,
                from_number="+15551230001",
                status="completed",
                started_at=NOW - timedelta(hours=3),
                ended_at=NOW - timedelta(hours=3) + timedelta(seconds=40),
                end_reason="hangup",
                summary="Maria asked Bob to call her about her renewal. The agent took a message.",
                intent="Renewal question",
                outcome="message_taken",
                summary_source="llm",
            ),
            Call(
                call_sid="CA-book",
                from_number="+15551230002",
                status="completed",
                started_at=NOW - timedelta(hours=2),
                ended_at=NOW - timedelta(hours=2) + timedelta(seconds=80),
                end_reason="transferred",
                summary="Dana booked a review. Then asked for a person.",
                outcome="transferred",
                summary_source="llm",
            ),
            Call(
                call_sid="CA-gone",
                from_number="+15551230003",
                status="completed",
                started_at=NOW - timedelta(hours=1),
                ended_at=NOW - timedelta(hours=1) + timedelta(seconds=5),
                summary="The caller hung up before saying anything.",
                outcome="abandoned",
                summary_source="rules",
            ),
            Call(call_sid="chat-9", from_number="+15551230001", direction="chat", status="in-progress"),
        ]
        s.add_all(calls)
        await s.flush()
        for seq, marks in enumerate(({"caller_stopped": 1000, "first_audio_sent": 1600},
                                     {"caller_stopped": 5000, "first_audio_sent": 5900})):  # fmt: skip
            s.add(CallTurn(call_id=calls[1].id, seq=seq, role="agent", text="Hello", marks=marks))
        s.add(Message(call_id=calls[0].id, caller_id=maria.id, kind="message", phone="+15551230001",
                      name="Maria Lopez", body="=Please call me back about the renewal"))  # fmt: skip
        s.add(
            Message(
                kind="voicemail", phone="+15551230004", body="Voicemail (12 s): https://api.twilio.com/r/RE1"
            )
        )
        s.add(Message(kind="sms", phone="+15551230001", body="An SMS the agent sent is not an inbox item"))
        start = datetime.now(ZoneInfo("America/New_York")).replace(hour=10, minute=0, second=0, microsecond=0)
        s.add(Appointment(call_id=calls[1].id, phone="+15551230002", name="Dana", reason="policy review",
                          starts_at=start + timedelta(days=1), duration_minutes=30))  # fmt: skip
        s.add(Appointment(phone="+15551230002", name="Dana", reason="Please call back about the claim",
                          starts_at=start + timedelta(days=3), duration_minutes=15))  # fmt: skip


def unread(client: TestClient) -> int:
    return int(client.get("/admin/api/inbox").json()["unread"])


def test_inbox_lists_items_with_their_call_and_clears_as_the_owner_works(
    admin: tuple[TestClient, str],
) -> None:
    client, csrf = admin
    asyncio.run(seed(client.app.state.runtime))
    assert unread(client) == 4  # message, voicemail, booking, callback request (not the SMS)
    assert 'id="inbox-unread" title="unread items">4</span>' in client.get("/admin").text
    page = client.get("/admin/inbox").text
    assert "Please call me back about the renewal" in page
    assert "Maria asked Bob to call her about her renewal." in page  # the call's summary
    assert 'href="/admin/calls/CA-msg"' in page and 'href="/admin/callers/%2B15551230001"' in page
    assert "Callback request" in page and "Voicemail" in page and "Booking" in page
    assert "An SMS the agent sent" not in page
    assert unread(client) == 0  # shown = read

    items = client.get("/admin/api/inbox").json()["items"]
    message = next(i for i in items if i["kind"] == "message")
    done = client.post(
        f"/admin/inbox/message/{message['id']}/done",
        data={"csrf_token": csrf, "state": "open"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin/inbox?state=open"
    noted = client.post(
        f"/admin/inbox/message/{message['id']}/note",
        data={"csrf_token": csrf, "note": "Called her back, renewal sorted."},
        headers={"Accept": "application/json"},
    )
    assert noted.json() == {"ok": True}
    open_items = client.get("/admin/api/inbox", params={"state": "open"}).json()["items"]
    done_items = client.get("/admin/api/inbox", params={"state": "done"}).json()["items"]
    assert message["id"] not in [i["id"] for i in open_items if i["table"] == "message"]
    assert [(i["id"], i["note"]) for i in done_items] == [(message["id"], "Called her back, renewal sorted.")]
    assert "Called her back, renewal sorted." in client.get("/admin/inbox?state=done").text
    reopened = client.post(
        f"/admin/inbox/message/{message['id']}/done", data={"csrf_token": csrf, "done": "false"}
    )
    assert reopened.status_code == 200 and "Mark done" in reopened.text
    assert client.post("/admin/inbox/message/999/done", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"/admin/inbox/message/{message['id']}/done", data={}).status_code == 403  # no CSRF


def test_appointments_by_day_and_week(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    asyncio.run(seed(client.app.state.runtime))
    week = client.get("/admin/appointments").text
    assert week.count('class="booking"') == 2 and "policy review" in week and "Callback request" in week
    assert "10:00" in week  # local time of the business (America/New_York)
    tomorrow = (datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=1)).isoformat()
    day = client.get("/admin/appointments", params={"view": "day", "day": tomorrow}).text
    assert day.count('class="booking"') == 1 and "policy review" in day


async def figures_from_db(runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as s:
        calls = (await s.execute(select(func.count()).where(Call.direction != "chat"))).scalar_one()
        rows = (
            await s.execute(select(Call).where(Call.direction != "chat", Call.ended_at.is_not(None)))
        ).scalars()
        durations = [(c.ended_at - c.started_at).total_seconds() for c in rows]
        outcomes = dict((await s.execute(select(Call.outcome, func.count()).where(Call.direction != "chat")
                                         .group_by(Call.outcome))).all())  # fmt: skip
    return {"calls": calls, "avg": round(sum(durations) / len(durations), 1), "outcomes": outcomes}


def test_analytics_match_the_database(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    runtime = client.app.state.runtime
    asyncio.run(seed(runtime))
    expected = asyncio.run(figures_from_db(runtime))
    data = client.get("/admin/api/analytics", params={"days": 7}).json()
    assert data["calls"] == expected["calls"] == 3 and data["chats"] == 1
    assert data["average_duration_seconds"] == expected["avg"]
    assert data["outcomes"] == expected["outcomes"]
    assert data["transfers"] == 1
    assert sum(d["calls"] for d in data["days"]) == 3 and len(data["days"]) == 7
    assert sum(data["calls_per_hour"]) == 3
    assert (data["answer_latency_p50_ms"], data["answer_latency_p95_ms"], data["answers_timed"]) == (
        600,
        900,
        2,
    )
    page = client.get("/admin/analytics?days=7").text
    assert 'data-figure="calls">3<' in page and 'data-figure="latency_p95">900 ms<' in page
    assert page.count("<svg") == 3 and "<script" not in page.split("</header>")[1]
    assert client.get("/admin/analytics?days=5").status_code == 422
    log = client.get("/admin").text.split('id="call-log"')[1]
    assert '<span class="channel-chat">Chat</span>' in log and "Message taken" in log  # chats are labelled
    found = client.get("/admin", params={"phone": "renewal"}).text.split('id="call-log"')[1]
    assert "CA-msg" in found and "CA-book" not in found  # the log is searchable by the summary's words
    by_outcome = client.get("/admin", params={"phone": "abandoned"}).text.split('id="call-log"')[1]
    assert "CA-gone" in by_outcome and "CA-msg" not in by_outcome


def test_csv_exports_open_in_python_csv(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    asyncio.run(seed(client.app.state.runtime))
    exported = {}
    for name in ("calls", "messages", "bookings"):
        response = client.get(f"/admin/export/{name}.csv")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert f'filename="{name}.csv"' in response.headers["content-disposition"]
        exported[name] = list(csv.DictReader(io.StringIO(response.text)))
    calls = {row["call_sid"]: row for row in exported["calls"]}
    assert list(exported["calls"][0]) == [
        "call_sid", "channel", "direction", "from_number", "to_number", "started_at", "ended_at",
        "duration_seconds", "status", "end_reason", "outcome", "outcome_label", "intent", "summary",
    ]  # fmt: skip
    assert (
        calls["CA-msg"]["outcome_label"] == "Message taken" and calls["CA-msg"]["duration_seconds"] == "40.0"
    )
    assert calls["chat-9"]["channel"] == "chat" and calls["CA-msg"]["from_number"] == "+15551230001"
    messages = exported["messages"]
    assert sorted(m["kind"] for m in messages) == ["message", "voicemail"]
    # caller text that a spreadsheet would run as a formula is quoted
    assert next(m for m in messages if m["kind"] == "message")["body"].startswith("'=Please")
    assert next(m for m in messages if m["kind"] == "message")["call_sid"] == "CA-msg"
    assert sorted(b["kind"] for b in exported["bookings"]) == ["booking", "callback"]
    assert {b["reason"] for b in exported["bookings"]} == {
        "policy review",
        "Please call back about the claim",
    }
    assert client.get("/admin/export/secrets.csv").status_code == 404


def test_owner_sections_need_a_login(client: TestClient) -> None:
    for path in ("/admin/api/inbox", "/admin/export/calls.csv", "/admin/api/analytics"):
        assert client.get(path).status_code == 401
    page = client.get("/admin/inbox", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/admin/login")


def test_a_voicemail_in_the_inbox_plays_its_recording_and_shows_its_transcript(
    tmp_path: Path, fake_twilio: FakeTwilioREST
) -> None:
    settings = twilio_settings(tmp_path, fake_twilio, ADMIN_PASSWORD=PASSWORD)
    with TestClient(create_app(settings), client=("192.0.2.10", 5000)) as client:
        asyncio.run(seed(client.app.state.runtime))
        log_in(client)

        def twilio_post(path: str, form: dict[str, str]) -> int:
            signature = RequestValidator(fake_twilio.auth_token).compute_signature(
                "https://agent.example.com" + path, form
            )
            return client.post(path, data=form, headers={"X-Twilio-Signature": signature}).status_code

        recording = {"CallSid": "CA-gone", "From": "+15551230003", "RecordingSid": "RE" + "a" * 32,
                     "RecordingUrl": "https://api.twilio.com/rec/REa", "RecordingDuration": "9"}  # fmt: skip
        assert twilio_post("/phone/transfer/voicemail", recording) == 200
        transcript = {
            **recording,
            "TranscriptionStatus": "completed",
            "TranscriptionText": "It's Sam, call me.",
        }
        assert twilio_post("/phone/voicemail/transcript", transcript) == 204
        [item] = [i for i in client.get("/admin/api/inbox").json()["items"] if i["call_sid"] == "CA-gone"]
        assert (item["kind"], item["transcript"], item["seconds"]) == ("voicemail", "It's Sam, call me.", "9")
        assert item["recording_url"] == "/admin/recordings/RE" + "a" * 32 and item["outcome"] == "voicemail"
        page = client.get("/admin/inbox").text
        assert f'<audio class="voicemail" controls preload="none" src="{item["recording_url"]}">' in page
        assert "It&#39;s Sam, call me." in page and "https://api.twilio.com/rec/REa" not in page


def test_inbox_item_ids_beyond_the_database_are_refused(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    for item_id in ("99999999999999999999", "0", "x"):
        answer = client.post(f"/admin/inbox/message/{item_id}/done", data={"csrf_token": csrf})
        assert answer.status_code == 422, item_id
    assert client.post("/admin/inbox/calls/1/done", data={"csrf_token": csrf}).status_code == 422
    for day in ("9999-12-31", "0001-01-01", "someday"):
        assert client.get("/admin/appointments", params={"day": day}).status_code == 422, day
