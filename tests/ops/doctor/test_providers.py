"""Doctor provider checks against the fakes: good key passes, bad key fails, a hanging API times out."""

from __future__ import annotations

from pathlib import Path

import httpx

from phone_agent.config import Settings
from phone_agent.ops.doctor import Check, DoctorContext, run_doctor
from phone_agent.ops.doctor.providers import set_voice_webhook
from tests.conftest import make_settings
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import FakeTwilioREST

NUMBER = "+15005550001"
PUBLIC = "https://agent.example.com"


async def checks(settings: Settings, *names: str, wait: float = 5.0) -> dict[str, Check]:
    report = await run_doctor(settings, check_timeout=wait, only=list(names))
    return {c.name: c for c in report.checks}


def twilio_settings(tmp_path: Path, fake: FakeTwilioREST, token: str | None = None) -> Settings:
    return make_settings(
        tmp_path,
        TWILIO_ACCOUNT_SID=fake.account_sid,
        TWILIO_AUTH_TOKEN=token or fake.auth_token,
        TWILIO_PHONE_NUMBER=NUMBER,
        PUBLIC_URL=PUBLIC,
        PHONE_AGENT_TWILIO_API_BASE_URL=fake.url,
    )


async def test_twilio_account_good_bad_and_timeout(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    good = await checks(twilio_settings(tmp_path, fake_twilio), "twilio.account")
    assert good["twilio.account"].status == "pass", good
    assert "active" in good["twilio.account"].detail
    bad = await checks(twilio_settings(tmp_path, fake_twilio, token="wrong-token"), "twilio.account")
    assert bad["twilio.account"].status == "fail"
    assert "401" in bad["twilio.account"].detail and bad["twilio.account"].fix
    assert "wrong-token" not in bad["twilio.account"].detail
    fake_twilio.hang_next()
    slow = await checks(twilio_settings(tmp_path, fake_twilio), "twilio.account", wait=1.0)
    assert slow["twilio.account"].status == "fail"
    assert slow["twilio.account"].detail == "no answer within 1 s"


async def test_twilio_account_missing_credentials_fails(tmp_path: Path) -> None:
    result = await checks(make_settings(tmp_path), "twilio.account")
    assert result["twilio.account"].status == "fail"
    assert "TWILIO_ACCOUNT_SID" in result["twilio.account"].detail


async def test_twilio_webhook_wrong_then_fixed(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    number = fake_twilio.add_number(NUMBER, voice_url="https://old.example.com/voice")
    settings = twilio_settings(tmp_path, fake_twilio)
    before = await checks(settings, "twilio.webhook")
    assert before["twilio.webhook"].status == "fail"
    assert "https://old.example.com/voice" in before["twilio.webhook"].detail
    assert "--fix" in (before["twilio.webhook"].fix or "")

    async with httpx.AsyncClient() as http:
        done = await set_voice_webhook(DoctorContext(settings=settings, http=http, timeout=5))
    assert done == f"set {NUMBER} voice webhook to POST {PUBLIC}/phone/incoming"
    updated = fake_twilio.numbers[number["sid"]]
    assert updated["voice_url"] == f"{PUBLIC}/phone/incoming"
    assert updated["voice_method"] == "POST"
    assert updated["status_callback"] == f"{PUBLIC}/phone/status"
    posts = [r for r in fake_twilio.requests_to("IncomingPhoneNumbers/") if r.method == "POST"]
    assert posts[-1].form["VoiceUrl"] == f"{PUBLIC}/phone/incoming"

    after = await checks(settings, "twilio.webhook")
    assert after["twilio.webhook"].status == "pass", after


async def test_twilio_webhook_timeout(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    fake_twilio.add_number(NUMBER, voice_url=f"{PUBLIC}/phone/incoming")
    fake_twilio.hang_next()
    slow = await checks(twilio_settings(tmp_path, fake_twilio), "twilio.webhook", wait=1.0)
    assert slow["twilio.webhook"].status == "fail" and slow["twilio.webhook"].detail == "no answer within 1 s"


async def test_twilio_webhook_number_not_on_account(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    result = await checks(twilio_settings(tmp_path, fake_twilio), "twilio.webhook")
    assert result["twilio.webhook"].status == "fail"
    assert "not a number of this Twilio account" in result["twilio.webhook"].detail


def openai_settings(tmp_path: Path, fake: FakeOpenAI, key: str | None = None, **env: str) -> Settings:
    return make_settings(
        tmp_path,
        OPENAI_API_KEY=key or fake.api_key,
        PHONE_AGENT_OPENAI_BASE_URL=fake.url + "/v1",
        PHONE_AGENT_LLM_BASE_URL=fake.url + "/v1",
        **env,
    )


async def test_openai_key_good_bad_and_timeout(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    good = await checks(openai_settings(tmp_path, fake_openai), "openai")
    assert good["openai.key"].status == "pass" and good["openai.model"].status == "pass", good
    assert "gpt-4o-mini" in good["openai.model"].detail
    bad = await checks(openai_settings(tmp_path, fake_openai, key="sk-wrong-key-123456"), "openai.key")
    assert bad["openai.key"].status == "fail" and "401" in bad["openai.key"].detail
    fake_openai.hang_next()
    slow = await checks(openai_settings(tmp_path, fake_openai), "openai.key", wait=1.0)
    assert slow["openai.key"].status == "fail" and "no answer" in slow["openai.key"].detail


async def test_openai_model_missing_fails(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    settings = openai_settings(tmp_path, fake_openai, PHONE_AGENT_LLM_MODEL="gpt-imaginary")
    result = await checks(settings, "openai.model")
    assert result["openai.model"].status == "fail"
    assert "gpt-imaginary" in result["openai.model"].detail


def eleven_settings(tmp_path: Path, fake: FakeElevenLabs, key: str | None = None, **env: str) -> Settings:
    return make_settings(
        tmp_path,
        ELEVENLABS_API_KEY=key or fake.api_key,
        PHONE_AGENT_ELEVENLABS_BASE_URL=fake.url,
        **env,
    )


async def test_elevenlabs_key_and_voice(tmp_path: Path, fake_elevenlabs: FakeElevenLabs) -> None:
    good = await checks(eleven_settings(tmp_path, fake_elevenlabs), "elevenlabs")
    assert good["elevenlabs.key"].status == "pass" and good["elevenlabs.voice"].status == "pass", good
    synth = fake_elevenlabs.http_requests[-1]
    assert synth["voice_id"] == "21m00Tcm4TlvDq8ikWAM" and synth["query"]["output_format"] == "ulaw_8000"
    assert "bytes of ulaw_8000 audio" in good["elevenlabs.voice"].detail

    bad = await checks(eleven_settings(tmp_path, fake_elevenlabs, key="xi-wrong"), "elevenlabs")
    assert bad["elevenlabs.key"].status == "fail" and "Invalid API key" in bad["elevenlabs.key"].detail
    assert bad["elevenlabs.voice"].status == "fail"

    fake_elevenlabs.hang_next()
    slow = await checks(eleven_settings(tmp_path, fake_elevenlabs), "elevenlabs.key", wait=1.0)
    assert slow["elevenlabs.key"].status == "fail" and "no answer" in slow["elevenlabs.key"].detail


async def test_elevenlabs_unknown_voice_fails(tmp_path: Path, fake_elevenlabs: FakeElevenLabs) -> None:
    fake_elevenlabs.accept_any_voice = False
    settings = eleven_settings(tmp_path, fake_elevenlabs, ELEVENLABS_VOICE_ID="no-such-voice")
    result = await checks(settings, "elevenlabs.voice")
    assert result["elevenlabs.voice"].status == "fail"
    assert "no-such-voice" in result["elevenlabs.voice"].detail
    assert "ELEVENLABS_VOICE_ID" in (result["elevenlabs.voice"].fix or "")


async def test_elevenlabs_missing_key_warns_with_openai_fallback(tmp_path: Path) -> None:
    result = await checks(make_settings(tmp_path, OPENAI_API_KEY="sk-x-123456789"), "elevenlabs.key")
    assert result["elevenlabs.key"].status == "warn"
    alone = await checks(make_settings(tmp_path, PHONE_AGENT_TTS_FALLBACK_PROVIDER="none"), "elevenlabs.key")
    assert alone["elevenlabs.key"].status == "fail"
