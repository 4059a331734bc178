"""POST /phone/incoming and /phone/status: Twilio signatures, TwiML, call records."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.tables import Call
from phone_agent.telephony.stream_token import signing_key, verify_stream_token
from tests.conftest import make_settings

AUTH_TOKEN = "twilio-auth-token-1234"
PUBLIC = "https://agent.example.com"
FORM = {
    "CallSid": "CA0123456789abcdef0123456789abcdef",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+15551230001",
    "To": "+15559870000",
    "CallStatus": "ringing",
    "Direction": "inbound",
}


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


# keys the voice path needs (never used here: no stream is opened by these tests)
VOICE_KEYS = {"OPENAI_API_KEY": "sk-test-voice", "ELEVENLABS_API_KEY": "xi-test-voice"}


@pytest.fixture
def client(tmp_path: Path):
    settings = make_settings(
        tmp_path,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_URL=PUBLIC,
        PHONE_AGENT_SESSION_SECRET="s3cret-for-tests",
        **VOICE_KEYS,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def calls(client: TestClient) -> list[Call]:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def read() -> list[Call]:
        async with runtime.sessions() as session:
            return list((await session.execute(select(Call))).scalars())

    assert client.portal is not None
    return client.portal.call(read)


def test_valid_signature_gets_connect_stream_twiml(client: TestClient) -> None:
    url = PUBLIC + "/phone/incoming"
    response = client.post("/phone/incoming", data=FORM, headers={"X-Twilio-Signature": sign(url, FORM)})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://agent.example.com/media-stream"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["caller"] == FORM["From"]
    assert params["call_sid"] == FORM["CallSid"]
    grant = verify_stream_token(signing_key(client.app.state.runtime.current.settings), params["token"])
    assert grant.call_sid == FORM["CallSid"] and grant.caller == FORM["From"]
    assert 250 < grant.expires_at - time.time() <= 300
    [call] = calls(client)
    assert (call.call_sid, call.from_number, call.status) == (FORM["CallSid"], FORM["From"], "ringing")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # missing
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},  # forged
        {"X-Twilio-Signature": sign(PUBLIC + "/phone/incoming", FORM, token="someone-elses-token")},
        {"X-Twilio-Signature": sign(PUBLIC + "/phone/other", FORM)},  # signed for another URL
    ],
)
def test_forged_or_missing_signature_is_403(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/phone/incoming", data=FORM, headers=headers)
    assert response.status_code == 403
    assert "Stream" not in response.text
    assert calls(client) == []


def test_tampered_params_are_403(client: TestClient) -> None:
    signature = sign(PUBLIC + "/phone/incoming", FORM)
    response = client.post(
        "/phone/incoming", data={**FORM, "From": "+15550000000"}, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


def test_forwarded_proto_and_host_without_public_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, TWILIO_AUTH_TOKEN=AUTH_TOKEN, **VOICE_KEYS)
    url = "https://proxy.example.org/phone/incoming"
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/phone/incoming",
            data=FORM,
            headers={
                "X-Twilio-Signature": sign(url, FORM),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "proxy.example.org",
            },
        )
        unproxied = client.post("/phone/incoming", data=FORM, headers={"X-Twilio-Signature": sign(url, FORM)})
    assert response.status_code == 200
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://proxy.example.org/media-stream"
    assert unproxied.status_code == 403


def test_no_auth_token_configured_refuses(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        response = client.post("/phone/incoming", data=FORM, headers={"X-Twilio-Signature": sign("x", FORM)})
    assert response.status_code == 403


def test_status_callback_records_completion(client: TestClient) -> None:
    url = PUBLIC + "/phone/incoming"
    client.post("/phone/incoming", data=FORM, headers={"X-Twilio-Signature": sign(url, FORM)})
    status = {**FORM, "CallStatus": "completed", "CallDuration": "42"}
    forged = client.post("/phone/status", data=status, headers={"X-Twilio-Signature": "AAAA"})
    assert forged.status_code == 403
    response = client.post(
        "/phone/status", data=status, headers={"X-Twilio-Signature": sign(PUBLIC + "/phone/status", status)}
    )
    assert response.status_code == 204
    [call] = calls(client)
    assert call.status == "completed" and call.end_reason == "completed"
    assert call.ended_at is not None and call.ended_at >= call.started_at


def test_status_for_unknown_call_creates_its_record(client: TestClient) -> None:
    status = {**FORM, "CallSid": "CAffff", "CallStatus": "no-answer"}
    response = client.post(
        "/phone/status", data=status, headers={"X-Twilio-Signature": sign(PUBLIC + "/phone/status", status)}
    )
    assert response.status_code == 204
    [call] = calls(client)
    assert (call.call_sid, call.status, call.from_number) == ("CAffff", "no-answer", FORM["From"])


@pytest.mark.parametrize(
    ("env", "handover"),
    [
        ({}, "<Record"),  # no OpenAI key at all: nothing could transcribe, answer or speak
        ({"PHONE_AGENT_HANDOFF_NUMBER": "(555) 010-0200", "ELEVENLABS_API_KEY": "xi-test"}, "<Dial"),
    ],
)
def test_missing_key_answers_with_an_apology_and_the_fallback_action(
    tmp_path: Path, env: dict[str, str], handover: str
) -> None:
    settings = make_settings(tmp_path, TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_URL=PUBLIC, **env)
    with TestClient(create_app(settings)) as client:
        headers = {"X-Twilio-Signature": sign(PUBLIC + "/phone/incoming", FORM)}
        response = client.post("/phone/incoming", data=FORM, headers=headers)
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        health = runtime.providers.report({})

        async def call_row() -> tuple[str | None, str | None]:
            async with runtime.sessions() as session:
                call = (await session.execute(select(Call))).scalar_one()
                return call.status, call.end_reason

        assert client.portal is not None
        status, end_reason = client.portal.call(call_row)
    assert response.status_code == 200
    root = ET.fromstring(response.text)
    assert root.find("./Connect") is None  # no stream that would end in silence
    assert root[0].tag == "Say" and "can't take your call right now" in (root[0].text or "")
    assert handover in response.text
    if handover == "<Dial":
        assert root.find("./Dial/Number").text == "+15550100200"  # type: ignore[union-attr]
    action = "transfer" if handover == "<Dial" else "voicemail"
    assert (status, end_reason) == ("ringing", f"not_configured → {action}")
    problem = health["configuration"]
    assert problem["ok"] is False and "OPENAI_API_KEY" in problem["last_error"]
