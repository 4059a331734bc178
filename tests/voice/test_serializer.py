"""Caller audio from Twilio ``media`` messages: the PCM Pipecat's own serializer makes, parsed once."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

from phone_agent.voice.serializer import TwilioMediaSerializer
from phone_agent.voice.web_leg import BrowserAudioSerializer
from tests.fakes.audio import read_ulaw, speech_wav

PARAMS = dict(stream_sid="MZ1", call_sid="CA1")


def media(payload: str) -> str:
    return json.dumps(
        {
            "event": "media",
            "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": "2", "payload": payload},
        }
    )


async def ready(serializer: TwilioFrameSerializer, rate: int) -> TwilioFrameSerializer:
    setup: Any = SimpleNamespace(audio_in_sample_rate=rate)  # all a serializer reads of the setup
    await serializer.setup(setup)
    return serializer


async def test_caller_audio_is_the_pcm_pipecats_serializer_makes() -> None:
    no_hang_up = TwilioFrameSerializer.InputParams(auto_hang_up=False)
    ours = await ready(  # 20 ms frames, as Twilio sends them; at the phone's own rate
        TwilioMediaSerializer(**PARAMS, params=no_hang_up, caller_frame_ms=20), 8000
    )
    stock = await ready(TwilioFrameSerializer(**PARAMS, params=no_hang_up), 8000)
    ulaw = read_ulaw(speech_wav("Tomorrow at ten please."))
    for start in range(0, 160 * 20, 160):
        message = media(base64.b64encode(ulaw[start : start + 160]).decode())
        frame, expected = await ours.deserialize(message), await stock.deserialize(message)
        assert isinstance(frame, InputAudioRawFrame) and isinstance(expected, InputAudioRawFrame)
        assert (frame.audio, frame.sample_rate, frame.num_channels) == (
            expected.audio, expected.sample_rate, expected.num_channels,
        )  # fmt: skip
        assert len(frame.audio) == 320  # 20 ms of 16-bit PCM at 8 kHz: no resampling


async def test_caller_audio_goes_on_in_40_ms_frames_of_the_same_pcm() -> None:
    no_hang_up = TwilioFrameSerializer.InputParams(auto_hang_up=False)
    ours = await ready(TwilioMediaSerializer(**PARAMS, params=no_hang_up), 8000)
    stock = await ready(TwilioFrameSerializer(**PARAMS, params=no_hang_up), 8000)
    ulaw = read_ulaw(speech_wav("Tomorrow at ten please."))
    frames, expected = [], []
    for start in range(0, 160 * 20, 160):
        message = media(base64.b64encode(ulaw[start : start + 160]).decode())
        frames.append(await ours.deserialize(message))
        expected.append(await stock.deserialize(message))
    assert frames[0::2] == [None] * 10  # the first 20 ms of each frame waits for the second
    made = [f for f in frames[1::2] if isinstance(f, InputAudioRawFrame)]
    assert [len(f.audio) for f in made] == [640] * 10  # 40 ms of 16-bit PCM at 8 kHz
    assert b"".join(f.audio for f in made) == b"".join(
        f.audio for f in expected if isinstance(f, InputAudioRawFrame)
    )


async def test_empty_or_broken_payloads_make_no_frame() -> None:
    ours = await ready(
        TwilioMediaSerializer(**PARAMS, params=TwilioFrameSerializer.InputParams(auto_hang_up=False)), 8000
    )
    assert await ours.deserialize(media("")) is None
    assert await ours.deserialize(media("%%%not-base64%%%")) is None


async def test_a_mark_echo_goes_straight_to_the_listener_and_makes_no_frame() -> None:
    no_hang_up = TwilioFrameSerializer.InputParams(auto_hang_up=False)
    twilio = await ready(TwilioMediaSerializer(**PARAMS, params=no_hang_up), 8000)
    browser = BrowserAudioSerializer()
    played: list[str] = []
    mark = {"event": "mark", "streamSid": "MZ1", "mark": {"name": "pa:3:600"}}
    assert await twilio.deserialize(json.dumps(mark)) is None  # no listener: nothing breaks
    twilio.on_played_mark = browser.on_played_mark = played.append
    assert await twilio.deserialize(json.dumps(mark)) is None
    assert await twilio.deserialize(json.dumps({"event": "mark", "mark": {"name": 3}})) is None
    assert await browser.deserialize(json.dumps({"event": "mark", "name": "pa:4:800"})) is None
    assert played == ["pa:3:600", "pa:4:800"]  # the nameless one is counted, not told
    assert twilio.limits.ignored == {"mark without a name": 1}
