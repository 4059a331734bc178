"""Transfer webhooks: signed whisper, voicemail after no answer, voicemail stored and texted to the owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.tables import Message
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings

PUBLIC = "https://agent.example.com"


@pytest.fixture
def client(tmp_path: Path, fake_twilio: FakeTwilioREST):
    settings = twilio_settings(tmp_path, fake_twilio, PHONE_AGENT_OWNER_SMS_NUMBER="+15550001111")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def post(client: TestClient, fake: FakeTwilioREST, path: str, form: dict[str, str], *, signed: bool = True):
    signature = RequestValidator(fake.auth_token).compute_signature(PUBLIC + path, form) if signed else "x"
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_whisper_tells_the_human_why(client: TestClient, fake_twilio: FakeTwilioREST) -> None:
    path = "/phone/transfer/whisper?reason=billing+question"
    answer = post(client, fake_twilio, path, {"CallSid": "CA1"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    assert "<Say>Call from our office's phone agent. Reason: billing question.</Say>" in answer.text
    assert post(client, fake_twilio, path, {"CallSid": "CA1"}, signed=False).status_code == 403


def test_no_answer_records_a_voicemail_which_is_stored_and_texted(
    client: TestClient, fake_twilio: FakeTwilioREST
) -> None:
    done = post(
        client, fake_twilio, "/phone/transfer/done", {"CallSid": "CA1", "DialCallStatus": "no-answer"}
    )
    assert (
        f'<Record action="{PUBLIC}/phone/transfer/voicemail" maxLength="120" playBeep="true" '
        f'transcribe="true" transcribeCallback="{PUBLIC}/phone/voicemail/transcript" />' in done.text
    )
    answered = post(
        client, fake_twilio, "/phone/transfer/done", {"CallSid": "CA1", "DialCallStatus": "completed"}
    )
    assert answered.text.endswith("<Response><Hangup /></Response>")
    form = {
        "CallSid": "CA1",
        "From": "+15551112222",
        "RecordingUrl": "https://api.twilio.com/rec/RE1",
        "RecordingDuration": "12",
    }
    stored = post(client, fake_twilio, "/phone/transfer/voicemail", form)
    assert stored.text.endswith("<Hangup /></Response>")
    missed, sms = sorted(fake_twilio.requests, key=lambda r: "missed transfer" not in r.form["Body"])
    assert missed.form["Body"].startswith("our office: missed transfer from an unknown caller")
    assert sms.form == {
        "To": "+15550001111",
        "From": "+15005550006",
        "Body": "our office: voicemail from +15551112222 (12 s): https://api.twilio.com/rec/RE1",
    }
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def read() -> list[tuple[str, str | None, str, str]]:
        async with runtime.sessions() as session:
            rows = (await session.scalars(select(Message))).all()
            return [(m.kind, m.phone, m.body, m.status) for m in rows]

    assert client.portal is not None
    assert client.portal.call(read) == [
        ("voicemail", "+15551112222", "Voicemail (12 s): https://api.twilio.com/rec/RE1", "sent")
    ]


def test_the_voicemail_transcript_is_added_to_its_message(
    client: TestClient, fake_twilio: FakeTwilioREST
) -> None:
    recorded = {
        "CallSid": "CA7",
        "From": "+1 (555) 111-3333",
        "RecordingUrl": "https://api.twilio.com/rec/RE7",
    }
    post(client, fake_twilio, "/phone/transfer/voicemail", recorded | {"RecordingDuration": "9"})
    transcript = recorded | {"TranscriptionStatus": "completed", "TranscriptionText": "Please call me back."}
    assert post(client, fake_twilio, "/phone/voicemail/transcript", transcript).status_code == 204
    assert (
        post(client, fake_twilio, "/phone/voicemail/transcript", transcript, signed=False).status_code == 403
    )
    failed = recorded | {"CallSid": "CA8", "TranscriptionStatus": "failed", "TranscriptionText": ""}
    assert post(client, fake_twilio, "/phone/voicemail/transcript", failed).status_code == 204
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def read() -> list[tuple[str | None, str]]:
        async with runtime.sessions() as session:
            return [(m.phone, m.body) for m in (await session.scalars(select(Message))).all()]

    assert client.portal is not None
    assert client.portal.call(read) == [
        ("+15551113333", "Voicemail (9 s): https://api.twilio.com/rec/RE7\nTranscript: Please call me back.")
    ]
