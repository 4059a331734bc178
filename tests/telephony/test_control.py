"""CallControl against the Twilio REST fake: exact requests (method, path, form), errors as ProviderError."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from phone_agent.config import Settings
from phone_agent.errors import ConfigError, ProviderError
from phone_agent.telephony.control import CallControl, transfer_done_twiml
from tests.conftest import make_settings
from tests.fakes.twilio_rest import FakeTwilioREST


def twilio_settings(tmp_path: Path, fake: FakeTwilioREST, **env: str) -> Settings:
    """Settings pointing call control at the Twilio fake."""
    return make_settings(
        tmp_path,
        TWILIO_ACCOUNT_SID=fake.account_sid,
        TWILIO_AUTH_TOKEN=fake.auth_token,
        TWILIO_PHONE_NUMBER="+15005550006",
        PHONE_AGENT_TWILIO_API_BASE_URL=fake.url,
        PUBLIC_URL="https://agent.example.com",
        PHONE_AGENT_HANDOFF_NUMBER="+15557654321",
        **env,
    )


async def test_hang_up_posts_status_completed(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    call = fake_twilio.add_call(from_="+15551112222")
    control = CallControl(twilio_settings(tmp_path, fake_twilio))
    try:
        await control.hang_up(call["sid"])
    finally:
        await control.aclose()
    request = fake_twilio.requests[-1]
    assert (request.method, request.path) == (
        "POST",
        f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls/{call['sid']}.json",
    )
    assert request.form == {"Status": "completed"}
    assert fake_twilio.calls[call["sid"]]["status"] == "completed"


async def test_send_sms_and_dial_out(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    control = CallControl(twilio_settings(tmp_path, fake_twilio))
    try:
        sid = await control.send_sms("+15551230000", "See you Monday at 10")
        call_sid = await control.dial_out("+15551230000", twiml="<Response><Say>Hi</Say></Response>")
    finally:
        await control.aclose()
    sms, dial = fake_twilio.requests
    assert (sms.method, sms.path) == ("POST", f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json")
    assert sms.form == {"To": "+15551230000", "From": "+15005550006", "Body": "See you Monday at 10"}
    assert sid == fake_twilio.messages[0]["sid"]
    assert (dial.method, dial.path) == ("POST", f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls.json")
    assert dial.form == {
        "To": "+15551230000",
        "From": "+15005550006",
        "Twiml": "<Response><Say>Hi</Say></Response>",
    }
    assert call_sid in fake_twilio.calls


async def test_transfer_dials_handoff_with_whisper_and_voicemail_fallback(
    tmp_path: Path, fake_twilio: FakeTwilioREST
) -> None:
    call = fake_twilio.add_call(from_="+15551112222")
    settings = twilio_settings(tmp_path, fake_twilio)
    control = CallControl(settings)
    try:
        await control.transfer(call["sid"], "billing question & refund")
    finally:
        await control.aclose()
    update = fake_twilio.call_updates[-1]
    assert update["sid"] == call["sid"] and list(update["params"]) == ["Twiml"]
    twiml = update["params"]["Twiml"]
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Please hold')
    assert (
        '<Dial action="https://agent.example.com/phone/transfer/done" callerId="+15005550006" timeout="20">'
        in twiml
    )
    number_url = twiml.split('<Number url="')[1].split('"')[0].replace("&amp;", "&")
    parsed = urlparse(number_url)
    assert parsed.path == "/phone/transfer/whisper"
    assert parse_qs(parsed.query) == {"reason": ["billing question & refund"]}
    assert twiml.endswith(">+15557654321</Number></Dial></Response>")
    # Twilio asks what next after the dial: voicemail when nobody answered, hang up when they talked.
    assert "<Record" in transfer_done_twiml(settings, "no-answer")
    assert transfer_done_twiml(settings, "completed").endswith("<Response><Hangup /></Response>")


async def test_twilio_errors_become_provider_errors(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    control = CallControl(twilio_settings(tmp_path, fake_twilio))
    try:
        with pytest.raises(ProviderError, match=r"hang up failed: .*not found \(code 20404\)"):
            await control.hang_up("CA" + "0" * 32)
        fake_twilio.fail_next(1, status=500)
        with pytest.raises(ProviderError, match="send SMS failed"):
            await control.send_sms("+15551230000", "hi")
    finally:
        await control.aclose()


async def test_missing_credentials_say_which(tmp_path: Path) -> None:
    control = CallControl(make_settings(tmp_path))
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        await control.hang_up("CA123")
