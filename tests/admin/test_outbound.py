"""Outbound calls in admin: "Call back" on a caller's page dials through Twilio; "Never call this
number" puts it on the do-not-call list, after which calling it is refused on the page with the
reason (nothing dialled); the list is edited on /admin/outbound; audit entries name no full number."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phone_agent.app import create_app
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import AuditEntry, DoNotCall, Message
from tests.admin.conftest import PASSWORD, log_in
from tests.admin.helpers import insert_calls
from tests.conftest import make_settings
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import twilio_env

MARIA = "+15551230001"  # the caller insert_calls creates
CALLER_PAGE = f"/admin/callers/{MARIA}"


@pytest.fixture
def admin_with_twilio(tmp_path: Path, fake_twilio: FakeTwilioREST) -> Iterator[tuple[TestClient, str]]:
    env = twilio_env(fake_twilio) | {
        "ADMIN_PASSWORD": PASSWORD,
        "TWILIO_PHONE_NUMBER": "+15005550006",
        "PUBLIC_URL": "http://127.0.0.1:9",  # nobody there: the fake's callbacks go nowhere
        "PHONE_AGENT_CALLING_HOURS": "Mon-Sun 00:00-24:00",
    }
    with TestClient(create_app(make_settings(tmp_path, **env)), client=("192.0.2.10", 5000)) as client:
        yield client, log_in(client)


def dialled(twilio: FakeTwilioREST) -> list[str]:
    return [r.form["To"] for r in twilio.requests_to("/Calls.json") if r.method == "POST"]


def test_call_back_and_do_not_call_from_the_caller_page(
    admin_with_twilio: tuple[TestClient, str], fake_twilio: FakeTwilioREST
) -> None:
    client, csrf = admin_with_twilio
    runtime = client.app.state.runtime
    asyncio.run(insert_calls(runtime))
    page = client.get(CALLER_PAGE).text
    assert 'id="call-back"' in page and "Never call this number" in page

    back = {"csrf_token": csrf, "back": CALLER_PAGE}
    placed = client.post(
        "/admin/outbound/call",
        data=back | {"to": MARIA, "purpose": "your Saturday booking"},
        follow_redirects=False,
    )
    assert placed.status_code == 303 and placed.headers["location"] == f"{CALLER_PAGE}?saved=calling"
    assert dialled(fake_twilio) == [MARIA]
    [create] = [r for r in fake_twilio.requests_to("/Calls.json") if r.method == "POST"]
    assert create.form["AsyncAmd"] == "true" and create.form["Url"].startswith(
        "http://127.0.0.1:9/phone/outbound/answer"
    )
    listing = client.get("/admin/outbound").text
    assert "your Saturday booking" in listing and MARIA in listing
    [call_sid] = list(fake_twilio.calls)
    detail = client.get(f"/admin/api/calls/{call_sid}").json()
    assert detail["direction"] == "outbound" and detail["outbound"]["purpose"] == "your Saturday booking"
    assert "The agent called about:" in client.get(f"/admin/calls/{call_sid}").text

    never = client.post("/admin/outbound/do-not-call", data=back | {"phone": MARIA}, follow_redirects=False)
    assert never.status_code == 303 and never.headers["location"] == f"{CALLER_PAGE}?saved=do-not-call"
    page = client.get(CALLER_PAGE).text
    assert 'id="caller-do-not-call"' in page and 'id="call-back"' not in page
    refused = client.post("/admin/outbound/call", data=back | {"to": MARIA, "purpose": "one more time"})
    assert refused.status_code == 403
    assert "Not called:" in refused.text and "is on the do-not-call list" in refused.text
    assert dialled(fake_twilio) == [MARIA]  # nothing more was dialled

    removed = client.post(
        f"/admin/outbound/do-not-call/{MARIA}/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert removed.status_code == 303
    assert 'id="call-back"' in client.get(CALLER_PAGE).text

    async def rows() -> tuple[list[DoNotCall], list[AuditEntry]]:
        async with runtime.sessions() as session:
            listed = list((await session.execute(select(DoNotCall))).scalars())
            audit = list((await session.execute(select(AuditEntry))).scalars())
        return listed, audit

    listed, audit = asyncio.run(rows())
    assert listed == []
    actions = [(a.action, a.target or "") for a in audit if a.action.startswith(("call.", "do_not_call."))]
    assert [a for a, _ in actions] == ["call.outbound", "do_not_call.add", "do_not_call.remove"]
    assert all(MARIA not in target for _, target in actions)


def test_do_not_call_list_rejects_a_bad_number_and_needs_csrf(
    admin_with_twilio: tuple[TestClient, str],
) -> None:
    client, csrf = admin_with_twilio
    bad = client.post("/admin/outbound/do-not-call", data={"csrf_token": csrf, "phone": "12"})
    assert bad.status_code == 422 and "not a phone number" in bad.text
    forged = client.post("/admin/outbound/do-not-call", data={"csrf_token": "nope", "phone": MARIA})
    assert forged.status_code == 403
    assert 'id="do-not-call-list"' not in client.get("/admin/outbound").text


def test_call_back_from_an_inbox_item(
    admin_with_twilio: tuple[TestClient, str], fake_twilio: FakeTwilioREST
) -> None:
    client, csrf = admin_with_twilio
    runtime = client.app.state.runtime

    async def add_voicemail() -> None:
        async with transaction(runtime.sessions) as session:
            session.add(
                Message(kind="voicemail", phone=MARIA, name="Maria", body="Please call me about Saturday.")
            )

    asyncio.run(add_voicemail())
    page = client.get("/admin/inbox").text
    item = page[page.index('class="inbox-item') :]
    assert 'action="/admin/outbound/call"' in item and 'value="your voicemail"' in item
    placed = client.post(
        "/admin/outbound/call",
        data={
            "csrf_token": csrf,
            "to": MARIA,
            "purpose": "your voicemail",
            "back": "/admin/inbox?state=open",
        },
        follow_redirects=False,
    )
    assert placed.status_code == 303 and placed.headers["location"] == "/admin/inbox?state=open&saved=calling"
    assert dialled(fake_twilio) == [MARIA]
    assert "Calling now" in client.get(placed.headers["location"]).text
