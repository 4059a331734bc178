"""FakeElevenLabs driven by Pipecat's real ElevenLabsTTSService and by a raw websocket client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.workers.runner import WorkerRunner

from tests.fakes.audio import is_silent, pcm16_rms
from tests.fakes.elevenlabs import FakeElevenLabs


class Collect(FrameProcessor):
    """Records frames leaving the TTS service."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self.stopped = asyncio.Event()
        self.stops = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        if isinstance(frame, TTSStoppedFrame):
            self.stops += 1
            if self.stops == 2:
                self.stopped.set()
        await self.push_frame(frame, direction)


def url(
    fake: FakeElevenLabs, voice: str = "voice-1", output_format: str = "pcm_16000", auto: bool = True
) -> str:
    return (
        f"{fake.ws_url}/v1/text-to-speech/{voice}/multi-stream-input?model_id=eleven_flash_v2_5"
        f"&output_format={output_format}&auto_mode={str(auto).lower()}"
    )


async def collect_until_final(ws: Any, context_id: str) -> list[dict[str, Any]]:
    messages = []
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            messages.append(message)
            if message.get("isFinal") and message.get("contextId") == context_id:
                return messages


async def test_pipecat_elevenlabs_service_speaks_through_the_fake() -> None:
    async with FakeElevenLabs(realtime_factor=20) as fake:
        tts = ElevenLabsTTSService(
            api_key=fake.api_key,
            url=fake.ws_url,
            settings=ElevenLabsTTSService.Settings(voice="voice-1", stability=0.4, similarity_boost=0.8),
        )
        collect = Collect()
        task = PipelineWorker(Pipeline([tts, collect]), params=PipelineParams(audio_out_sample_rate=8000))
        await task.queue_frames(
            [TTSSpeakFrame("Hello there. How can I help?"), TTSSpeakFrame("Goodbye now.")]
        )

        async def end_when_spoken() -> None:
            await asyncio.wait_for(collect.stopped.wait(), timeout=10)
            await task.queue_frame(EndFrame())

        ender = asyncio.create_task(end_when_spoken())
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(task)
        await runner.run()
        await ender
    connection = fake.connections[0]
    assert connection["voice_id"] == "voice-1" and connection["headers"]["xi-api-key"] == fake.api_key
    assert connection["query"]["output_format"] == "pcm_8000" and connection["query"]["auto_mode"] == "true"
    contexts = list(fake.contexts.values())
    assert [c.text for c in contexts] == ["Hello there. How can I help?", "Goodbye now."]
    assert contexts[0].voice_settings == {"stability": 0.4, "similarity_boost": 0.8}
    assert all(c.flushes == 1 and c.closed and c.final_sent for c in contexts)
    assert fake.messages[-1] == {"close_socket": True}
    audio = b"".join(f.audio for f in collect.frames if isinstance(f, TTSAudioRawFrame))
    assert len(audio) == 2 * 8000 * 70 * (len(contexts[0].text) + len(contexts[1].text)) // 1000
    assert pcm16_rms(audio) > 1000
    words = [f.text for f in collect.frames if isinstance(f, TTSTextFrame)]
    assert words[:2] == ["Hello", "there."]


async def test_close_context_speaks_queued_text_then_is_final_and_keepalive_is_harmless() -> None:
    async with FakeElevenLabs(realtime_factor=0) as fake:
        async with websockets.connect(url(fake), additional_headers={"xi-api-key": fake.api_key}) as ws:
            await ws.send(json.dumps({"text": ""}))  # context-less keepalive
            await ws.send(json.dumps({"text": " ", "context_id": "c1", "voice_settings": {"speed": 1.1}}))
            await ws.send(json.dumps({"text": "First sentence. ", "context_id": "c1"}))
            await ws.send(json.dumps({"text": "", "context_id": "c1"}))  # keepalive for the context
            await ws.send(json.dumps({"text": "Second one.", "context_id": "c1"}))
            await ws.send(json.dumps({"context_id": "c1", "flush": True}))
            await ws.send(json.dumps({"context_id": "c1", "close_context": True}))
            messages = await collect_until_final(ws, "c1")
    audio_messages = [m for m in messages if m.get("audio")]
    assert messages[-1] == {"isFinal": True, "contextId": "c1"}
    assert all(m["contextId"] == "c1" for m in audio_messages)
    spoken = "".join("".join(m["alignment"]["chars"]) for m in audio_messages)
    assert spoken == "First sentence. Second one."
    for m in audio_messages:
        assert m["alignment"]["charStartTimesMs"][0] == 0  # times restart in every message
        assert len(base64.b64decode(m["audio"])) == 2 * 16000 * 70 * len(m["alignment"]["chars"]) // 1000
    assert fake.contexts["c1"].voice_settings == {"speed": 1.1}


async def test_without_auto_mode_text_waits_for_flush() -> None:
    async with FakeElevenLabs(realtime_factor=0) as fake:
        async with websockets.connect(
            url(fake, auto=False), additional_headers={"xi-api-key": fake.api_key}
        ) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "c1"}))
            await ws.send(json.dumps({"text": "Short text.", "context_id": "c1"}))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), timeout=0.3)
            await ws.send(json.dumps({"context_id": "c1", "flush": True}))
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=2))
    assert "".join(first["alignment"]["chars"]) == "Short text."


async def test_ulaw_8000_audio_is_non_silent_mulaw() -> None:
    async with FakeElevenLabs(realtime_factor=0) as fake:
        headers = {"xi-api-key": fake.api_key}
        async with websockets.connect(url(fake, output_format="ulaw_8000"), additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "c1"}))
            await ws.send(json.dumps({"text": "Hi.", "context_id": "c1"}))
            await ws.send(json.dumps({"context_id": "c1", "close_context": True}))
            messages = await collect_until_final(ws, "c1")
    audio = b"".join(base64.b64decode(m["audio"]) for m in messages if m.get("audio"))
    assert len(audio) == 8000 * 70 * 3 // 1000 and not is_silent(audio)


async def test_voice_settings_after_the_first_message_is_a_policy_violation() -> None:
    async with FakeElevenLabs() as fake:
        async with websockets.connect(url(fake), additional_headers={"xi-api-key": fake.api_key}) as ws:
            await ws.send(json.dumps({"text": "", "context_id": "c1"}))
            await ws.send(json.dumps({"text": " ", "context_id": "c1", "voice_settings": {"stability": 0.5}}))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), timeout=2)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_leaking_contexts_hits_the_limit() -> None:
    async with FakeElevenLabs() as fake:
        async with websockets.connect(url(fake), additional_headers={"xi-api-key": fake.api_key}) as ws:
            for i in range(fake.max_contexts + 1):
                await ws.send(json.dumps({"text": " ", "context_id": f"c{i}"}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), timeout=2)
    assert fake.close_codes[-1][0] == 1008 and "Maximum number of contexts" in fake.close_codes[-1][1]


async def test_wrong_key_is_refused_at_the_handshake() -> None:
    async with FakeElevenLabs() as fake:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(url(fake), additional_headers={"xi-api-key": "nope"})
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body)["detail"]["status"] == "invalid_api_key"


async def test_drop_closes_the_socket_mid_stream() -> None:
    async with FakeElevenLabs(realtime_factor=0) as fake:
        fake.drop_next()
        async with websockets.connect(url(fake), additional_headers={"xi-api-key": fake.api_key}) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "c1"}))
            await ws.send(
                json.dumps({"text": "A long sentence that needs several audio messages.", "context_id": "c1"})
            )
            received = []
            with pytest.raises(websockets.ConnectionClosed) as info:
                while True:
                    received.append(await asyncio.wait_for(ws.recv(), timeout=2))
    assert len(received) == 1 and info.value.rcvd is not None and info.value.rcvd.code == 1011


async def test_hang_accepts_and_never_answers() -> None:
    async with FakeElevenLabs() as fake:
        fake.hang_next()
        async with websockets.connect(url(fake), additional_headers={"xi-api-key": fake.api_key}) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "c1"}))
            await ws.send(json.dumps({"text": "Hello.", "context_id": "c1", "flush": True}))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), timeout=0.5)


async def test_http_stream_and_timestamps_and_voices() -> None:
    async with FakeElevenLabs(realtime_factor=0, first_audio_latency=0) as fake:
        headers = {"xi-api-key": fake.api_key}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as http:
            started = time.monotonic()
            streamed = await http.post(
                "/v1/text-to-speech/voice-1/stream",
                params={"output_format": "pcm_24000"},
                json={"text": "Hello"},
            )
            assert streamed.status_code == 200 and len(streamed.content) == 2 * 24000 * 70 * 5 // 1000
            assert time.monotonic() - started < 5
            lines = await http.post(
                "/v1/text-to-speech/voice-1/stream/with-timestamps",
                params={"output_format": "pcm_16000"},
                json={"text": "Hello there, caller"},
            )
            chunks = [json.loads(line) for line in lines.text.splitlines() if line]
            assert "".join("".join(c["alignment"]["characters"]) for c in chunks) == "Hello there, caller"
            missing = await http.post("/v1/text-to-speech/voice-1", json={"txt": "x"})
            assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "text"]
            voices = await http.get("/v1/voices")
            assert {v["voice_id"] for v in voices.json()["voices"]} == set(fake.voices)
            user = await http.get("/v1/user")
            assert user.json()["subscription"]["tier"] == "creator"
            denied = await http.get("/v1/user", headers={"xi-api-key": "wrong"})
            assert denied.status_code == 401 and denied.json()["detail"]["status"] == "invalid_api_key"
            mp3 = await http.post("/v1/text-to-speech/voice-1", json={"text": "x"})
            assert mp3.status_code == 422  # the fake can't render the mp3 default: say so, don't fake it
