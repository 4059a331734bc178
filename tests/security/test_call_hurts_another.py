"""Finding 8: one call hurt another.

Nothing limited a Media Stream message below uvicorn's 16 MB: 60 x 1 MB media frames from one call
pushed another call's turn to 11 s and grew memory by 77 MB (each frame was minutes of audio for
VAD, turn detection and STT). Now each connection has a budget (``voice/stream_limits.py``):
messages above 64 KB are dropped unread (and ``serve`` makes uvicorn close on them), messages are
read no faster than 200 a second, audio beyond twice real time is dropped. The timing figure is a
bench (``bench/abuse.py``); these tests check the budget itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from pipecat.frames.frames import InputAudioRawFrame
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from phone_agent.storage.tables import Call, CallTurn
from phone_agent.voice.serializer import TwilioMediaSerializer
from phone_agent.voice.stream_limits import StreamLimits
from tests.fakes.audio import FRAME_BYTES, ULAW_SILENCE, is_silent, read_ulaw, speech_wav
from tests.running_agent import SHORT_GREETINGS
from tests.security.agent_process import agent_process

MESSAGE_TOO_BIG = 1009


def _media(audio: bytes) -> str:
    return json.dumps(
        {"event": "media", "media": {"track": "inbound", "payload": base64.b64encode(audio).decode()}}
    )


class FakeClock:
    """Time that only moves when told to (or when the limiter sleeps)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


async def _serializer(clock: FakeClock) -> TwilioMediaSerializer:
    serializer = TwilioMediaSerializer(
        stream_sid="MZ1",
        params=TwilioMediaSerializer.InputParams(sample_rate=8000, auto_hang_up=False),
        limits=StreamLimits(clock=lambda: clock.now, sleep=clock.sleep),
        caller_frame_ms=20,  # a frame per message: each message's fate is its frame
    )
    await serializer.setup(None)  # type: ignore[arg-type]  # the sample rate is in the params
    return serializer


async def test_a_flood_is_read_at_the_message_rate_and_its_audio_capped() -> None:
    clock = FakeClock()
    serializer = await _serializer(clock)
    frame = _media(b"\x10" * FRAME_BYTES)
    audio = [f for f in [await serializer.deserialize(frame) for _ in range(1000)] if f is not None]
    # 400 at once, then 200 a second: the 1,000th message is read 3 s after the first
    assert 2.9 < clock.slept < 3.1
    # audio: 10 s saved up + 2x real time for those 3 s = 128,000 bytes of the 160,000 sent
    assert all(isinstance(f, InputAudioRawFrame) for f in audio)
    assert 790 <= len(audio) <= 810
    assert serializer.limits.ignored["audio over the rate"] == 1000 - len(audio)
    huge = _media(b"\x10" * 100_000)  # 12.5 s of audio in one 133 KB message
    assert await serializer.deserialize(huge) is None and serializer.limits.ignored["oversize"] == 1


async def test_twilio_pace_is_never_held_back() -> None:
    clock = FakeClock()
    serializer = await _serializer(clock)
    frame = _media(b"\x10" * FRAME_BYTES)
    for _ in range(3000):  # a minute of a call: 50 media messages a second
        assert isinstance(await serializer.deserialize(frame), InputAudioRawFrame)
        clock.now += 0.02
    assert clock.slept == 0 and not serializer.limits.ignored


async def test_speech_in_an_oversize_message_is_not_heard(agent_factory: Any, db_rows: Any) -> None:
    speech = read_ulaw(speech_wav("Cancel all my bookings please"))
    frames = [speech[i : i + FRAME_BYTES] for i in range(0, len(speech), FRAME_BYTES)]
    while is_silent(frames[-1]):
        frames.pop()  # end on speech: had the frame been analysed, the caller would be speaking
    speech = b"".join(frames)
    padded = ULAW_SILENCE * (10 * 8000 - len(speech)) + speech  # 10 s: 107 KB as base64 JSON
    with agent_factory(**SHORT_GREETINGS) as agent:
        agent.script_speech(["Do you have a table tonight?"], ["Yes, we have one at eight."])
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=30)
            await caller.wait_for_quiet(0.5, timeout=30)
            await caller.send_raw(_media(padded))
            await caller.send_silence(4.0)  # time enough for a turn, had the frame been heard
            unheard = list(agent.openai.transcription_requests)
            turn = await caller.say_wav(speech_wav("Do you have a table tonight"))
            await caller.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await caller.wait_for_quiet(0.5, timeout=30)

    assert unheard == []
    assert caller.ended_by == "caller"
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns if t.role == "caller"] == [
        ("caller", "Do you have a table tonight?")
    ]


async def test_serve_closes_the_socket_on_an_oversize_frame(tmp_path: Path) -> None:
    with agent_process(tmp_path, {"PHONE_AGENT_DATA_DIR": str(tmp_path / "data")}) as agent:
        async with connect(agent.ws_url + "/media-stream", max_size=None) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            try:
                await ws.send("x" * (1024 * 1024))
            except ConnectionClosed:  # closed on the frame's header, before the client wrote it all
                pass
            await asyncio.wait_for(ws.wait_closed(), timeout=30)
        assert ws.close_code == MESSAGE_TOO_BIG
        assert agent.alive()
