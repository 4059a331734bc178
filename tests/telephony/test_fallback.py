"""The fallback action: an apology in Twilio's voice, then a transfer, a voicemail or a hang-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from phone_agent.telephony.fallback import fallback_twiml, resolved_fallback_action
from tests.conftest import make_settings

PUBLIC = "https://agent.example.com"


@pytest.mark.parametrize(
    ("setting", "handoff", "expected"),
    [
        ("auto", None, "voicemail"),
        ("auto", "+15550001111", "transfer"),
        ("transfer", None, "voicemail"),  # nobody to transfer to
        ("voicemail", "+15550001111", "voicemail"),
        ("hang_up", "+15550001111", "hang_up"),
    ],
)
def test_the_action_the_setting_stands_for(
    tmp_path: Path, setting: str, handoff: str | None, expected: str
) -> None:
    env = {"PHONE_AGENT_FALLBACK_ACTION": setting}
    if handoff:
        env["PHONE_AGENT_HANDOFF_NUMBER"] = handoff
    assert resolved_fallback_action(make_settings(tmp_path, **env)) == expected


def test_voicemail_records_with_transcription(tmp_path: Path) -> None:
    twiml = fallback_twiml(make_settings(tmp_path, PUBLIC_URL=PUBLIC), apology="Sorry, I can't hear you.")
    assert twiml.startswith(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Sorry, I can\'t hear you.</Say>'
    )
    assert (
        f'<Record action="{PUBLIC}/phone/transfer/voicemail" maxLength="120" playBeep="true" '
        f'transcribe="true" transcribeCallback="{PUBLIC}/phone/voicemail/transcript" />'
    ) in twiml


def test_transfer_dials_the_handoff_number_with_the_reason_whispered(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        PUBLIC_URL=PUBLIC,
        PHONE_AGENT_HANDOFF_NUMBER="+15550001111",
        TWILIO_PHONE_NUMBER="+15005550006",
    )
    twiml = fallback_twiml(settings, reason="speech recognition is down")
    assert (
        f'<Dial action="{PUBLIC}/phone/transfer/done" callerId="+15005550006" timeout="20">'
        f'<Number url="{PUBLIC}/phone/transfer/whisper?reason=speech+recognition+is+down">'
        "+15550001111</Number>"
        "</Dial>"
    ) in twiml
    assert "<Record" not in twiml


def test_hang_up_says_when_to_call_again(tmp_path: Path) -> None:
    twiml = fallback_twiml(make_settings(tmp_path, PHONE_AGENT_FALLBACK_ACTION="hang_up"), apology="")
    assert twiml.endswith(
        "<Say>Please call our office again a little later. Goodbye.</Say><Hangup /></Response>"
    )
