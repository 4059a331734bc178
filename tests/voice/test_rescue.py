"""CallRescue: one apology, the fallback TwiML through a call update, the end reason; a hang-up when
Twilio cannot take the call; never twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from phone_agent.ops.provider_health import ProviderHealth
from phone_agent.telephony.control import CallControl
from phone_agent.voice.playout import PlayoutTracker
from phone_agent.voice.rescue import APOLOGY, CallRescue
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings


class Recorded:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.ended: list[str] = []
        self.kept_up = 0

    async def speak(self, text: str) -> None:
        self.said.append(text)

    async def end(self, reason: str) -> None:
        self.ended.append(reason)

    def keep_up(self) -> None:
        self.kept_up += 1


@asynccontextmanager
async def rescue_for(
    tmp_path: Path, fake: FakeTwilioREST, record: Recorded, **env: str
) -> AsyncIterator[CallRescue]:
    settings = twilio_settings(tmp_path, fake, **env)
    control = CallControl(settings)
    yield CallRescue(
        settings=settings,
        control=control,
        call_sid=fake.add_call()["sid"],
        tracker=PlayoutTracker(stream_sid="MZ" + "0" * 32),
        speak=record.speak,
        end_pipeline=record.end,
        keep_call_up=record.keep_up,
        health=ProviderHealth(),
    )
    await control.aclose()


async def test_a_voice_that_never_starts_leaves_the_apology_to_twilio(
    tmp_path: Path, fake_twilio: FakeTwilioREST
) -> None:
    record = Recorded()
    async with rescue_for(tmp_path, fake_twilio, record) as rescue:
        await rescue.give_up("stt", "primary STT: http_401")
        await rescue.give_up("llm", "again")  # once per call
    assert record.said == [APOLOGY]  # asked of the agent's voice, which sent no audio in time
    [update] = fake_twilio.call_updates
    twiml = update["params"]["Twiml"]
    assert twiml.index(f"<Say>{APOLOGY}</Say>") < twiml.index("<Dial")
    assert record.kept_up == 1 and record.ended == ["stt_failed → transfer"]
    assert rescue.end_reason == "stt_failed → transfer" and rescue.apology_spoken_by == "twilio"


async def test_twilio_failing_leaves_a_hang_up(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    record = Recorded()
    fake_twilio.fail_next(1, status=500)
    async with rescue_for(tmp_path, fake_twilio, record, PHONE_AGENT_FALLBACK_ACTION="voicemail") as rescue:
        await rescue.give_up("tts", "every voice failed", voice_works=False)
    assert record.said == [] and fake_twilio.call_updates == []
    assert record.ended == ["tts_failed → hang_up"] and rescue.apology_spoken_by is None
