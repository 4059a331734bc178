"""FakeDeepgram driven by Pipecat's real DeepgramSTTService and by a raw websocket client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.workers.runner import WorkerRunner

from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16
from tests.fakes.deepgram import FakeDeepgram

SPEECH = "I would like to book a table"


class Collect(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self.final = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame)):
            self.frames.append(frame)
            if isinstance(frame, TranscriptionFrame):
                self.final.set()
        await self.push_frame(frame, direction)


def speech_pcm(seconds_of_silence_after: float = 0.6) -> bytes:
    ulaw = read_ulaw(speech_wav(SPEECH)) + b"\xff" * int(8000 * seconds_of_silence_after)
    return ulaw_to_pcm16(ulaw)


def listen_url(fake: FakeDeepgram, **params: str) -> str:
    query = {"encoding": "linear16", "sample_rate": "8000", "interim_results": "true"} | params
    return fake.ws_url + "/v1/listen?" + "&".join(f"{k}={v}" for k, v in query.items())


def auth(fake: FakeDeepgram) -> dict[str, str]:
    return {"Authorization": f"Token {fake.api_key}"}


async def receive_json(ws: Any, until_type: str | None = None, final: bool = False) -> list[dict[str, Any]]:
    messages = []
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            messages.append(message)
            if until_type and message.get("type") == until_type:
                return messages
            if final and message.get("is_final"):
                return messages


async def test_pipecat_deepgram_service_gets_interim_and_final_transcripts() -> None:
    async with FakeDeepgram() as fake:
        fake.transcripts.append("I would like to book a table.")
        stt = DeepgramSTTService(api_key=fake.api_key, base_url=fake.url)
        collect = Collect()
        task = PipelineWorker(Pipeline([stt, collect]), params=PipelineParams(audio_in_sample_rate=8000))
        pcm = speech_pcm()

        async def feed() -> None:
            await asyncio.sleep(0.3)
            for start in range(0, len(pcm), 320):
                await task.queue_frame(InputAudioRawFrame(pcm[start : start + 320], 8000, 1))
            await asyncio.wait_for(collect.final.wait(), timeout=10)
            await task.queue_frame(EndFrame())

        feeder = asyncio.create_task(feed())
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(task)
        await runner.run()
        await feeder
    finals = [f.text for f in collect.frames if isinstance(f, TranscriptionFrame)]
    interims = [f.text for f in collect.frames if isinstance(f, InterimTranscriptionFrame)]
    assert finals == ["I would like to book a table."]
    assert interims and all("I would like to book a table.".startswith(i) for i in interims)
    session = fake.sessions[0]
    assert session["query"]["encoding"] == "linear16" and session["query"]["sample_rate"] == "8000"
    assert session["headers"]["authorization"] == f"Token {fake.api_key}"
    assert session["audio_bytes"] == len(pcm)
    assert session["control"][-1] == "CloseStream" and session["closed_by"] == "CloseStream"


async def test_endpointing_final_is_speech_final_and_close_stream_sends_metadata() -> None:
    async with FakeDeepgram() as fake:
        async with websockets.connect(
            listen_url(fake, endpointing="300"), additional_headers=auth(fake)
        ) as ws:
            await ws.send(speech_pcm(0.5))
            messages = await receive_json(ws, final=True)
            await ws.send(json.dumps({"type": "KeepAlive"}))
            await ws.send(json.dumps({"type": "CloseStream"}))
            tail = await receive_json(ws, until_type="Metadata")
            with pytest.raises(websockets.ConnectionClosedOK):
                await ws.recv()
    final = messages[-1]
    assert final["type"] == "Results" and final["is_final"] and final["speech_final"]
    assert final["channel"]["alternatives"][0]["transcript"] == fake.default_transcript
    assert final["channel"]["alternatives"][0]["words"][0]["punctuated_word"] == "Hello,"
    assert tail[-1]["type"] == "Metadata" and tail[-1]["duration"] > 1.0
    assert fake.sessions[0]["control"] == ["KeepAlive", "CloseStream"]


async def test_finalize_answers_from_finalize_without_waiting_for_silence() -> None:
    async with FakeDeepgram() as fake:
        fake.transcripts.append("Tomorrow at ten please.")
        async with websockets.connect(
            listen_url(fake, endpointing="false"), additional_headers=auth(fake)
        ) as ws:
            await ws.send(speech_pcm(0.0))
            await ws.send(json.dumps({"type": "Finalize"}))
            messages = await receive_json(ws, final=True)
    assert messages[-1]["from_finalize"] is True and messages[-1]["speech_final"] is False
    assert messages[-1]["channel"]["alternatives"][0]["transcript"] == "Tomorrow at ten please."


async def test_mulaw_encoding_and_vad_events() -> None:
    async with FakeDeepgram() as fake:
        url = listen_url(fake, encoding="mulaw", vad_events="true", interim_results="false")
        async with websockets.connect(url, additional_headers=auth(fake)) as ws:
            await ws.send(read_ulaw(speech_wav(SPEECH)) + b"\xff" * 4000)
            messages = await receive_json(ws, final=True)
    assert messages[0]["type"] == "SpeechStarted"
    assert [m["is_final"] for m in messages if m.get("type") == "Results"] == [True]


async def test_bad_key_and_bad_query_are_refused_at_the_handshake() -> None:
    async with FakeDeepgram() as fake:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(listen_url(fake), additional_headers={"Authorization": "Token nope"})
        assert info.value.response.status_code == 401
        assert json.loads(info.value.response.body)["err_code"] == "INVALID_AUTH"
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(
                fake.ws_url + "/v1/listen?encoding=linear16", additional_headers=auth(fake)
            )
        assert info.value.response.status_code == 400


async def test_inactivity_closes_with_net0001() -> None:
    async with FakeDeepgram() as fake:
        fake.inactivity_timeout = 0.3
        async with websockets.connect(listen_url(fake), additional_headers=auth(fake)) as ws:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), timeout=3)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert fake.sessions[0]["closed_by"] == "NET-0001"


async def test_injected_500_and_drop() -> None:
    async with FakeDeepgram() as fake:
        fake.fail_next(1, status=500)
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(listen_url(fake), additional_headers=auth(fake))
        assert info.value.response.status_code == 500
        fake.drop_next()
        async with websockets.connect(listen_url(fake), additional_headers=auth(fake)) as ws:
            await ws.send(speech_pcm(0.5))
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
