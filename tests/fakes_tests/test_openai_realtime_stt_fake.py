"""The realtime transcription fake, driven by Pipecat's real `OpenAIRealtimeSTTService` and by a raw
websocket client: session, commit → transcript after the configured latency, speech vs silence
decided like the segmented-STT fake, server VAD, and every fault. Every server event must parse
with the official `openai` SDK's Realtime models."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import WorkerRunner
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.stt import OpenAIRealtimeSTTService
from pydantic import TypeAdapter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.fakes.audio import read_ulaw, speech_pcm16, speech_wav, ulaw_to_pcm16
from tests.fakes.openai_realtime_stt import SAMPLE_RATE, FakeOpenAIRealtimeSTT

SPEECH = "I would like to book a table"
SILENCE = b"\x00\x00" * (SAMPLE_RATE // 2)  # 500 ms at 24 kHz
SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
LOCAL_VAD_SESSION = {
    "type": "transcription",
    "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": None}},
}


class Collect(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.transcripts: list[str] = []
        self.errors: list[str] = []
        self.final = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self.transcripts.append(frame.text)
            self.final.set()
        elif isinstance(frame, ErrorFrame):
            self.errors.append(frame.error)
        await self.push_frame(frame, direction)


async def open_session(
    fake: FakeOpenAIRealtimeSTT, key: str | None = None, query: str = "intent=transcription"
):
    return await connect(
        f"{fake.ws_url}/v1/realtime?{query}",
        additional_headers={"Authorization": f"Bearer {key or fake.api_key}"},
    )


async def next_event(ws: ClientConnection, wanted: str, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
    """Read events until one of type `wanted`; each must validate against the SDK's event models."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            SERVER_EVENT.validate_json(raw)
            event = json.loads(raw)
            if event["type"] == wanted:
                return event


async def send(ws: ClientConnection, event: dict[str, Any]) -> None:
    await ws.send(json.dumps(event))


async def append(ws: ClientConnection, pcm: bytes) -> None:
    for i in range(0, len(pcm), 9600):  # 200 ms per event
        await send(
            ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + 9600]).decode()}
        )


async def configured(fake: FakeOpenAIRealtimeSTT, session: dict[str, Any] | None = None) -> ClientConnection:
    ws = await open_session(fake)
    created = await next_event(ws, "session.created")
    assert created["session"]["type"] == "transcription"
    await send(ws, {"type": "session.update", "session": session or LOCAL_VAD_SESSION})
    await next_event(ws, "session.updated")
    return ws


async def test_pipecat_service_commits_at_vad_stop_and_gets_the_transcript_after_the_latency() -> None:
    async with FakeOpenAIRealtimeSTT(stt_latency=0.2) as fake:
        fake.transcripts.append("I would like to book a table.")
        stt = OpenAIRealtimeSTTService(api_key=fake.api_key, base_url=fake.ws_url + "/v1/realtime")
        collect = Collect()
        task = PipelineWorker(Pipeline([stt, collect]), params=PipelineParams(audio_in_sample_rate=8000))
        pcm = ulaw_to_pcm16(read_ulaw(speech_wav(SPEECH)) + b"\xff" * 2400)
        stopped_at: list[float] = []

        async def feed() -> None:
            await asyncio.sleep(0.5)  # session.created → session.update
            await task.queue_frame(VADUserStartedSpeakingFrame())
            for start in range(0, len(pcm), 320):
                await task.queue_frame(InputAudioRawFrame(pcm[start : start + 320], 8000, 1))
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.2)
            stopped_at.append(time.monotonic())
            await task.queue_frame(VADUserStoppedSpeakingFrame())
            await asyncio.wait_for(collect.final.wait(), timeout=10)
            await task.queue_frame(EndFrame())

        feeder = asyncio.create_task(feed())
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(task)
        await runner.run()
        await feeder
    assert collect.transcripts == ["I would like to book a table."] and not collect.errors
    [session] = fake.sessions
    assert session["query"] == {"intent": "transcription"}
    assert session["headers"]["authorization"] == f"Bearer {fake.api_key}"
    audio_in = session["session"]["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["transcription"]["model"] == "gpt-realtime-whisper" and audio_in["turn_detection"] is None
    assert [e["type"] for e in session["events"] if e["type"] != "input_audio_buffer.append"] == [
        "session.update",
        "input_audio_buffer.commit",
    ]
    assert session["audio_bytes"] >= 3 * len(pcm) * 0.95  # 8 kHz resampled to 24 kHz
    [commit] = fake.commits
    assert commit.at >= stopped_at[0] and commit.completed_at is not None
    assert 0.2 <= commit.completed_at - commit.at < 0.5
    assert session["sent"][-2:] == [
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]


async def test_commit_answers_committed_then_word_deltas_and_completed() -> None:
    async with FakeOpenAIRealtimeSTT(stt_latency=0.2) as fake:
        fake.transcripts.append("Tomorrow at ten please.")
        async with await configured(fake) as ws:
            await append(ws, SILENCE + speech_pcm16("Tomorrow at ten please", SAMPLE_RATE) + SILENCE)
            await send(ws, {"type": "input_audio_buffer.commit"})
            committed = await next_event(ws, "input_audio_buffer.committed")
            at = time.monotonic()
            deltas = [await next_event(ws, "conversation.item.input_audio_transcription.delta")]
            while len("".join(d["delta"] for d in deltas)) < len("Tomorrow at ten please."):
                deltas.append(await next_event(ws, "conversation.item.input_audio_transcription.delta"))
            completed = await next_event(ws, "conversation.item.input_audio_transcription.completed")
            waited = time.monotonic() - at
    assert committed["previous_item_id"] is None
    assert {d["item_id"] for d in deltas} == {committed["item_id"]} == {completed["item_id"]}
    assert [d["delta"] for d in deltas] == ["Tomorrow", " at", " ten", " please."]
    assert completed["transcript"] == "Tomorrow at ten please." and completed["content_index"] == 0
    assert completed["usage"]["type"] == "duration" and completed["usage"]["seconds"] > 1.0
    assert 0.15 <= waited < 0.6


async def test_silence_is_transcribed_as_empty_and_a_tiny_buffer_is_refused() -> None:
    async with FakeOpenAIRealtimeSTT() as fake:
        fake.transcripts.append("never used")
        async with await configured(fake) as ws:
            await append(ws, SILENCE * 4)
            await send(ws, {"type": "input_audio_buffer.commit"})
            first = await next_event(ws, "input_audio_buffer.committed")
            completed = await next_event(ws, "conversation.item.input_audio_transcription.completed")
            assert completed["transcript"] == ""
            await append(ws, b"\x00\x00" * 480)  # 20 ms
            await send(ws, {"type": "input_audio_buffer.commit", "event_id": "tiny"})
            refused = await next_event(ws, "error")
            await send(ws, {"type": "input_audio_buffer.clear"})
            await next_event(ws, "input_audio_buffer.cleared")
            await append(ws, speech_pcm16(SPEECH, SAMPLE_RATE))
            await send(ws, {"type": "input_audio_buffer.commit"})
            second = await next_event(ws, "input_audio_buffer.committed")
            spoken = await next_event(ws, "conversation.item.input_audio_transcription.completed")
    assert (
        refused["error"]["code"] == "input_audio_buffer_commit_empty"
        and refused["error"]["event_id"] == "tiny"
    )
    assert second["previous_item_id"] == first["item_id"]
    assert spoken["transcript"] == "never used" and list(fake.transcripts) == []
    assert [c.transcript for c in fake.commits] == ["", "never used"]


async def test_server_vad_commits_after_the_silence_duration() -> None:
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "transcription": {"model": "gpt-4o-transcribe"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
            }
        },
    }
    async with FakeOpenAIRealtimeSTT() as fake:
        async with await configured(fake, session) as ws:
            await append(ws, SILENCE + speech_pcm16(SPEECH, SAMPLE_RATE) + SILENCE)
            started = await next_event(ws, "input_audio_buffer.speech_started")
            stopped = await next_event(ws, "input_audio_buffer.speech_stopped")
            committed = await next_event(ws, "input_audio_buffer.committed")
            completed = await next_event(ws, "conversation.item.input_audio_transcription.completed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == completed["item_id"]
    assert 200 <= started["audio_start_ms"] < stopped["audio_end_ms"]
    assert completed["transcript"] == fake.default_transcript


async def test_bad_session_updates_and_events_get_error_events() -> None:
    async with FakeOpenAIRealtimeSTT() as fake:
        async with await open_session(fake) as ws:
            await next_event(ws, "session.created")
            pcm16k = {"format": {"type": "audio/pcm", "rate": 16000}}
            bad = [
                ({"type": "realtime"}, "session.type"),
                ({"type": "transcription", "audio": {"input": pcm16k}}, "session.audio.input.format.rate"),
                ({"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o"}}}},
                 "session.audio.input.transcription.model"),
            ]  # fmt: skip
            for session, param in bad:
                await send(ws, {"type": "session.update", "session": session})
                assert (await next_event(ws, "error"))["error"]["param"] == param
            await send(ws, {"type": "response.create"})
            assert (await next_event(ws, "error"))["error"]["param"] == "type"
            await send(ws, {"type": "input_audio_buffer.append", "audio": "not base64!"})
            assert (await next_event(ws, "error"))["error"]["param"] == "audio"
    assert fake.sessions[0]["session"] == {}


async def test_key_intent_and_injected_handshake_failures() -> None:
    async with FakeOpenAIRealtimeSTT() as fake:
        for key, query, status in (
            ("sk-wrong", "intent=transcription", 401),
            (None, "model=gpt-realtime", 400),
        ):
            with pytest.raises(InvalidStatus) as refused:
                await open_session(fake, key=key, query=query)
            assert refused.value.response.status_code == status
        for status in (500, 401):
            fake.fail_next(status=status)
            with pytest.raises(InvalidStatus) as refused:
                await open_session(fake)
            assert refused.value.response.status_code == status
            assert json.loads(refused.value.response.body)["error"]["message"]
        fake.hang_next()
        async with await open_session(fake) as ws:
            with pytest.raises(TimeoutError):
                await next_event(ws, "session.created", timeout=0.5)
        fake.drop_next()
        async with await open_session(fake) as ws:
            await next_event(ws, "session.created")
            with pytest.raises(ConnectionClosedError) as closed:
                await next_event(ws, "session.updated")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


async def test_drop_and_hang_at_a_commit() -> None:
    async with FakeOpenAIRealtimeSTT() as fake:
        fake.hang_at_commit(1)
        fake.drop_at_commit(2)
        async with await configured(fake) as ws:
            await append(ws, speech_pcm16(SPEECH, SAMPLE_RATE))
            await send(ws, {"type": "input_audio_buffer.commit"})
            await next_event(ws, "input_audio_buffer.committed")
            with pytest.raises(TimeoutError):
                await next_event(ws, "conversation.item.input_audio_transcription.completed", timeout=0.5)
            await append(ws, speech_pcm16(SPEECH, SAMPLE_RATE))
            await send(ws, {"type": "input_audio_buffer.commit"})
            with pytest.raises(ConnectionClosedError) as closed:
                await next_event(ws, "input_audio_buffer.committed")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert [c.transcript for c in fake.commits] == [None]
