"""FakeTwilioREST driven by the official `twilio` SDK and by Pipecat's serializer hang-up."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import EndFrame
from pipecat.serializers.twilio import TwilioFrameSerializer
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.fakes.twilio_rest import FakeTwilioREST


def test_account_fetch_and_basic_auth(fake_twilio: FakeTwilioREST) -> None:
    client = fake_twilio.client()
    assert client.api.v2010.accounts(fake_twilio.account_sid).fetch().status == "active"
    bad = Client(fake_twilio.account_sid, "not-the-token")
    bad.api.base_url = fake_twilio.url
    with pytest.raises(TwilioRestException) as info:
        bad.messages.create(to="+15551230000", from_="+15005550006", body="hi")
    assert (info.value.status, info.value.code) == (401, 20003)
    assert fake_twilio.messages == []


def test_api_key_pair_authenticates(fake_twilio: FakeTwilioREST) -> None:
    key, secret = fake_twilio.add_api_key()
    client = Client(key, secret, fake_twilio.account_sid)
    client.api.base_url = fake_twilio.url
    message = client.messages.create(to="+15551230000", from_="+15005550006", body="hello")
    assert message.status == "queued"


def test_call_update_twiml_then_hangup_then_redirect_fails(fake_twilio: FakeTwilioREST) -> None:
    call = fake_twilio.add_call(from_="+15551112222")
    seen: list[dict[str, object]] = []
    fake_twilio.on_call_update(call["sid"], seen.append)
    client = fake_twilio.client()
    twiml = "<Response><Dial>+15553334444</Dial></Response>"
    updated = client.calls(call["sid"]).update(twiml=twiml)
    assert updated.status == "in-progress"
    assert fake_twilio.call_updates[-1] == {"sid": call["sid"], "params": {"Twiml": twiml}}
    assert client.calls(call["sid"]).update(status="completed").status == "completed"
    with pytest.raises(TwilioRestException) as info:
        client.calls(call["sid"]).update(twiml="<Response><Hangup/></Response>")
    assert (info.value.status, info.value.code) == (400, 21220)
    assert [s["_update"] for s in seen] == [{"Twiml": twiml}, {"Status": "completed"}]


def test_unknown_call_is_404_20404(fake_twilio: FakeTwilioREST) -> None:
    with pytest.raises(TwilioRestException) as info:
        fake_twilio.client().calls("CA" + "0" * 32).update(status="completed")
    assert (info.value.status, info.value.code) == (404, 20404)


def test_outbound_call_create_and_validation(fake_twilio: FakeTwilioREST) -> None:
    client = fake_twilio.client()
    call = client.calls.create(to="+15551230000", from_="+15005550006", url="https://agent.example/voice")
    assert call.status == "queued" and call.direction == "outbound-api"
    assert fake_twilio.calls[call.sid]["to"] == "+15551230000"
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="+15551230000", from_="+15005550006")
    assert info.value.code == 21205
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="555", from_="+15005550006", twiml="<Response/>")
    assert info.value.code == 21211


def test_messages_create_records_and_validates(fake_twilio: FakeTwilioREST) -> None:
    client = fake_twilio.client()
    message = client.messages.create(to="+15551230000", from_="+15005550006", body="See you Monday at 10")
    assert message.sid.startswith("SM") and message.body == "See you Monday at 10"
    assert fake_twilio.messages[0]["to"] == "+15551230000"
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to="+15551230000", from_="+15005550006", body="")
    assert info.value.code == 21602
    assert len(fake_twilio.messages) == 1


def test_incoming_numbers_list_and_voice_url_update(fake_twilio: FakeTwilioREST) -> None:
    number = fake_twilio.add_number("+15005550006")
    fake_twilio.add_number("+15005550007")
    client = fake_twilio.client()
    listed = client.incoming_phone_numbers.list(phone_number="+15005550006")
    assert [n.sid for n in listed] == [number["sid"]]
    updated = client.incoming_phone_numbers(number["sid"]).update(
        voice_url="https://agent.example/twilio/voice"
    )
    assert updated.voice_url == "https://agent.example/twilio/voice"
    assert fake_twilio.numbers[number["sid"]]["voice_url"] == "https://agent.example/twilio/voice"
    with pytest.raises(TwilioRestException):
        client.incoming_phone_numbers(number["sid"]).update(voice_url="ftp://nope")


async def test_pipecat_serializer_hangs_up_through_the_fake(fake_twilio: FakeTwilioREST) -> None:
    call = fake_twilio.add_call()
    serializer = TwilioFrameSerializer(
        stream_sid="MZ" + "1" * 32,
        call_sid=call["sid"],
        account_sid=fake_twilio.account_sid,
        auth_token=fake_twilio.auth_token,
        base_url=fake_twilio.url,
    )
    await serializer.serialize(EndFrame())
    assert fake_twilio.calls[call["sid"]]["status"] == "completed"
    hangups = fake_twilio.requests_to(f"/Calls/{call['sid']}.json")
    assert hangups[0].method == "POST" and hangups[0].form == {"Status": "completed"}


def test_injected_failure_uses_twilio_error_shape(fake_twilio: FakeTwilioREST) -> None:
    fake_twilio.fail_next(1, status=503)
    with pytest.raises(TwilioRestException) as info:
        fake_twilio.client().messages.create(to="+15551230000", from_="+15005550006", body="x")
    assert info.value.status == 503 and info.value.code == 20500
