"""Finding 10: the webhook signature trusted the client's URL; replays minted fresh stream tokens.

With ``PUBLIC_URL`` set, a signature computed for another host passed once Host/X-Forwarded-*
named that host (whoever holds any Twilio-signed request for a URL of theirs could aim it at us).
Now ``PUBLIC_URL`` is the only URL checked. And one CallSid gets one token: a retried
``/phone/incoming`` is answered with the same token; once the call streams or has ended, a
replayed request gets ``<Hangup/>`` and no token.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.storage.tables import Call
from tests.conftest import make_settings

AUTH_TOKEN = "twilio-auth-token-1234"
PUBLIC = "https://agent.example.com"
FORM = {
    "CallSid": "CA00000000000000000000000000000010",
    "AccountSid": "AC00000000000000000000000000000010",
    "From": "+15551230001",
    "To": "+15559870000",
    "CallStatus": "ringing",
    "Direction": "inbound",
}


def sign(url: str, params: dict[str, str]) -> str:
    return RequestValidator(AUTH_TOKEN).compute_signature(url, params)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_URL=PUBLIC,
        PHONE_AGENT_SESSION_SECRET="s3cret-for-tests",
        OPENAI_API_KEY="sk-test-voice",  # the voice path is configured (no provider is called here)
    )
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as test_client:  # via our nginx
        yield test_client


def _stream(response: Any) -> dict[str, str] | None:
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    return None if stream is None else {p.get("name"): p.get("value") for p in stream.findall("Parameter")}


def _call(client: TestClient) -> Call:
    async def read() -> Call:
        async with client.app.state.runtime.sessions() as session:  # type: ignore[attr-defined]
            return (await session.execute(select(Call))).scalar_one()

    assert client.portal is not None
    return client.portal.call(read)


def _incoming(client: TestClient, form: dict[str, str] = FORM) -> Any:
    signature = sign(PUBLIC + "/phone/incoming", form)
    return client.post("/phone/incoming", data=form, headers={"X-Twilio-Signature": signature})


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "attacker.example.net", "X-Forwarded-Proto": "https"},
        {"X-Forwarded-Host": "attacker.example.net", "X-Forwarded-Proto": "https"},
        {
            "Host": "attacker.example.net",
            "X-Forwarded-Host": "attacker.example.net",
            "X-Forwarded-Proto": "https",
        },
    ],
)
def test_a_signature_for_another_host_fails_whatever_the_headers(
    client: TestClient, headers: dict[str, str]
) -> None:
    foreign = sign("https://attacker.example.net/phone/incoming", FORM)
    response = client.post("/phone/incoming", data=FORM, headers={"X-Twilio-Signature": foreign, **headers})
    assert response.status_code == 403 and "Stream" not in response.text


def test_a_retried_webhook_gets_the_same_token_and_a_replay_none(client: TestClient) -> None:
    first = _stream(_incoming(client))
    retry = _stream(_incoming(client))
    assert first is not None and retry == first  # the same TwiML: Twilio may use either answer
    assert _call(client).status == "ringing"

    async def stream_started() -> None:  # the media stream took the call (as its claim marks the row)
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        async with runtime.sessions() as session, session.begin():
            await session.execute(update(Call).values(status="in-progress"))

    assert client.portal is not None
    client.portal.call(stream_started)
    while_streaming = _incoming(client)
    status = {**FORM, "CallStatus": "completed"}
    client.post(
        "/phone/status", data=status, headers={"X-Twilio-Signature": sign(PUBLIC + "/phone/status", status)}
    )
    after_the_call = _incoming(client)

    for replay in (while_streaming, after_the_call):
        assert replay.status_code == 200 and _stream(replay) is None and "token" not in replay.text
        assert ET.fromstring(replay.text).find("./Hangup") is not None
    call = _call(client)
    assert (call.status, call.ended_at is not None) == ("completed", True)
