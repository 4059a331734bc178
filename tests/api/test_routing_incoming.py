"""Routing rules at /phone/incoming: answered by TwiML alone (no stream, no provider) or connected to
the agent; every rule that fired is on the call's row."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.brain.routing.rules import check_rule
from phone_agent.runtime import Runtime
from phone_agent.storage.routing import add_rule
from phone_agent.storage.tables import Call
from tests.fakes.twilio_rest import FakeTwilioREST, new_sid
from tests.telephony.test_control import twilio_settings

PUBLIC = "https://agent.example.com"
VOICE_KEYS = {"OPENAI_API_KEY": "sk-test-voice", "ELEVENLABS_API_KEY": "xi-test-voice"}
ROUTING = {
    "PHONE_AGENT_TRANSFER_DESTINATIONS": "Claims=+15550100001; Sales=+15550100002",
    "PHONE_AGENT_OWNER_SMS_NUMBER": "+15550001111",
    "PHONE_AGENT_SESSION_SECRET": "s3cret-for-tests",
}


@pytest.fixture
def make_client(tmp_path: Path, fake_twilio: FakeTwilioREST) -> Any:
    clients: list[TestClient] = []

    def start(**env: str) -> TestClient:
        settings = twilio_settings(tmp_path, fake_twilio, **VOICE_KEYS, **ROUTING, **env)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def add(client: TestClient, name: str, conditions: dict, action: dict) -> int:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    checked, act = check_rule(runtime.current.settings, name=name, conditions=conditions, action=action)
    assert client.portal is not None
    return client.portal.call(
        lambda: add_rule(
            runtime.sessions, name=name, conditions=checked.model_dump(), action=act.model_dump()
        )
    )


def ring(
    client: TestClient, fake: FakeTwilioREST, caller: str, call_sid: str | None = None
) -> tuple[str, ET.Element]:
    form = {
        "CallSid": call_sid or new_sid("CA"),
        "From": caller,
        "To": "+15005550006",
        "Direction": "inbound",
    }
    signature = RequestValidator(fake.auth_token).compute_signature(PUBLIC + "/phone/incoming", form)
    response = client.post("/phone/incoming", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    return form["CallSid"], ET.fromstring(response.text)


def call_row(client: TestClient, call_sid: str) -> Call:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def read() -> Call:
        async with runtime.sessions() as session:
            return (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one()

    assert client.portal is not None
    return client.portal.call(read)


def test_blocked_number_is_rejected_without_a_stream(make_client: Any, fake_twilio: FakeTwilioREST) -> None:
    client = make_client()
    add(client, "Blocked", {"numbers": ["(555) 010-6666"]}, {"type": "reject"})
    call_sid, twiml = ring(client, fake_twilio, "+1 555 010 6666")
    assert [child.tag for child in twiml] == ["Reject"] and twiml[0].get("reason") == "rejected"
    assert twiml.find(".//Stream") is None
    row = call_row(client, call_sid)
    assert row.routing_rule == "Blocked" and row.end_reason == "routed → reject"
    assert row.routing_events[0]["stage"] == "incoming" and row.routing_events[0]["action"] == "reject"
    # anyone else still reaches the agent, and their row says no rule fired
    other_sid, other = ring(client, fake_twilio, "+15550100009")
    assert other.find("./Connect/Stream") is not None
    assert call_row(client, other_sid).routing_rule is None


def test_after_hours_rule_fires_at_incoming(make_client: Any, fake_twilio: FakeTwilioREST) -> None:
    client = make_client(PHONE_AGENT_BUSINESS_HOURS="Mon-Sun 00:00-00:01")  # closed nearly all day
    add(client, "After hours", {"hours": "after_hours"}, {"type": "voicemail"})
    call_sid, twiml = ring(client, fake_twilio, "+15550100009")
    assert twiml.find("./Record") is not None and twiml.find(".//Stream") is None
    assert twiml.find("./Record").get("action") == PUBLIC + "/phone/transfer/voicemail"
    assert call_row(client, call_sid).routing_rule == "After hours"


def test_open_hours_rule_does_not_fire_after_hours(make_client: Any, fake_twilio: FakeTwilioREST) -> None:
    client = make_client(PHONE_AGENT_BUSINESS_HOURS="Mon-Sun 00:00-24:00")  # always open
    add(client, "After hours", {"hours": "after_hours"}, {"type": "voicemail"})
    add(client, "Closed day", {"hours": "closed_day"}, {"type": "hang_up", "text": "We're closed today."})
    call_sid, twiml = ring(client, fake_twilio, "+15550100009")
    assert twiml.find("./Connect/Stream") is not None
    assert call_row(client, call_sid).routing_rule is None


def test_vip_is_tagged_and_transferred_warm(make_client: Any, fake_twilio: FakeTwilioREST) -> None:
    client = make_client()
    add(client, "VIP tag", {"numbers": ["+15550107777"]}, {"type": "tag", "tag": "vip"})
    add(client, "VIP line", {"numbers": ["+15550107777"]}, {"type": "transfer", "destination": "Sales"})
    call_sid, twiml = ring(client, fake_twilio, "+15550107777")
    number = twiml.find("./Dial/Number")
    assert number is not None and number.text == "+15550100002"
    assert "VIP+line" in number.get("url", "") and number.get("url", "").startswith(
        PUBLIC + "/phone/transfer/whisper"
    )
    row = call_row(client, call_sid)
    assert row.tags == ["vip"] and row.routing_rule == "VIP line"
    assert [e["name"] for e in row.routing_events] == ["VIP tag", "VIP line"]


def test_sms_and_country_rules(make_client: Any, fake_twilio: FakeTwilioREST) -> None:
    client = make_client()
    add(client, "UK", {"prefixes": ["+44"]}, {"type": "sms", "to": "owner", "text": "A call from the UK"})
    add(client, "Returning", {"caller": "returning"}, {"type": "hang_up", "text": "Welcome back, goodbye."})
    first_sid, first = ring(client, fake_twilio, "+442079460000")
    assert first.find("./Connect/Stream") is not None  # an SMS does not answer the call
    [sms] = fake_twilio.messages
    assert sms["to"] == "+15550001111" and sms["body"] == "A call from the UK (caller +442079460000)"
    assert call_row(client, first_sid).routing_rule == "UK"
    # the same number again is a returning caller: the hang-up rule answers
    _, second = ring(client, fake_twilio, "+442079460000")
    assert [c.tag for c in second] == ["Say", "Hangup"] and second[0].text == "Welcome back, goodbye."


def test_retried_webhook_gets_the_same_answer_and_no_second_sms(
    make_client: Any, fake_twilio: FakeTwilioREST
) -> None:
    client = make_client()
    add(client, "UK", {"prefixes": ["+44"]}, {"type": "sms", "to": "owner", "text": "UK call"})
    add(client, "UK to claims", {"prefixes": ["+44"]}, {"type": "transfer", "destination": "Claims"})
    call_sid, first = ring(client, fake_twilio, "+442079460000")
    _, again = ring(client, fake_twilio, "+442079460000", call_sid=call_sid)
    assert ET.tostring(first) == ET.tostring(again)
    assert len(fake_twilio.messages) == 1
    assert len(call_row(client, call_sid).routing_events) == 2
