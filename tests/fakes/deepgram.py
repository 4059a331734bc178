"""`FakeDeepgram`: the live transcription websocket (`/v1/listen?...`) as Pipecat's
`DeepgramSTTService` (deepgram-sdk 7) uses it.

Binary frames are audio in the `encoding`/`sample_rate` from the query (linear16 or mulaw). An
energy detector finds speech; while the caller talks, interim `Results` (`is_final: false`) reveal
the transcript word by word (with `interim_results=true`); once silence lasts
max(`endpointing` ms, `vad_hangover`) the final `Results` (`is_final` and `speech_final` true) is
sent `stt_latency` later. `{"type": "Finalize"}` finalizes at once (`from_finalize: true`),
`{"type": "KeepAlive"}` only resets the 10 s inactivity timer (NET-0001 close after that),
`{"type": "CloseStream"}` (or an empty binary frame) flushes, sends `Metadata` and closes.
Each utterance's transcript comes from `fake.transcripts` (a queue), else `default_transcript`.

The pre-recorded API is here too: `POST /v1/listen?model=...` with the audio as the body
(`Content-Type: audio/wav`) answers `{"metadata": ..., "results": {"channels": [{"alternatives":
[{"transcript", "confidence", "words"}]}]}}` with the next transcript (recorded in `prerecorded`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.audio import ulaw_to_pcm16
from tests.fakes.base import ASGIApp, FakeServer

MODEL_UUID = "1d1e4f5a-6b7c-4d8e-9f00-112233445566"
NET_0001 = "Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001"


class FakeDeepgram(FakeServer):
    """Local Deepgram listen API. Records `.sessions` and every `.results` message sent."""

    name = "deepgram"

    def __init__(self, *, api_key: str = "fake-deepgram-key", stt_latency: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.stt_latency = stt_latency
        self.vad_hangover = 0.2  # seconds of silence before a pause counts (Deepgram's own VAD)
        self.speech_rms = 300.0  # PCM16 RMS above which a 20 ms window is speech
        self.inactivity_timeout = 10.0
        self.transcripts: deque[str] = deque()
        self.default_transcript = "Hello, I would like to book an appointment."
        self.sessions: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.prerecorded: list[dict[str, Any]] = []
        self.project_id = str(uuid.uuid4())

    def reset_state(self) -> None:
        self.transcripts.clear()
        self.sessions.clear()
        self.results.clear()
        self.prerecorded.clear()

    def error_body(self, status: int) -> dict[str, Any]:
        return {
            "err_code": "INTERNAL_SERVER_ERROR",
            "err_msg": f"Injected failure {status}",
            "request_id": str(uuid.uuid4()),
        }

    def build_app(self) -> ASGIApp:
        return Starlette(
            routes=[
                WebSocketRoute("/v1/listen", self._listen),
                Route("/v1/listen", self._prerecorded, methods=["POST"]),
                Route("/v1/projects", self._projects, methods=["GET"]),
            ]
        )

    def _refused(self, request: Request) -> Response | None:
        """Deepgram's 401 for a missing or wrong ``Authorization: Token <key>``, else None."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme not in ("Token", "Bearer") or key != self.api_key:
            body = {
                "err_code": "INVALID_AUTH",
                "err_msg": "Invalid credentials.",
                "request_id": str(uuid.uuid4()),
            }
            return JSONResponse(body, status_code=401)
        return None

    async def _projects(self, request: Request) -> Response:
        """``GET /v1/projects``: the projects the key can see (Deepgram's management API)."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        return JSONResponse({"projects": [{"project_id": self.project_id, "name": "Fake project"}]})

    async def _prerecorded(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        audio = await request.body()
        if not audio:
            body = {"err_code": "Bad Request", "err_msg": "No audio", "request_id": str(uuid.uuid4())}
            return JSONResponse(body, status_code=400)
        self.prerecorded.append({"query": dict(request.query_params), "audio_bytes": len(audio)})
        text = self.transcripts.popleft() if self.transcripts else self.default_transcript
        words = [
            {"word": w.strip(".,!?").lower(), "start": i * 0.3, "end": (i + 1) * 0.3, "confidence": 0.98}
            for i, w in enumerate(text.split())
        ]
        alternative = {"transcript": text, "confidence": 0.98 if text else 0.0, "words": words}
        metadata = {"request_id": str(uuid.uuid4()), "model_uuid": MODEL_UUID, "channels": 1}
        return JSONResponse(
            {"metadata": metadata, "results": {"channels": [{"alternatives": [alternative]}]}}
        )

    async def _listen(self, websocket: WebSocket) -> None:
        query = dict(websocket.query_params)
        auth = websocket.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme not in ("Token", "Bearer") or key != self.api_key:
            body = {
                "err_code": "INVALID_AUTH",
                "err_msg": "Invalid credentials.",
                "request_id": str(uuid.uuid4()),
            }
            await websocket.send_denial_response(JSONResponse(body, status_code=401))
            return
        problem = _query_problem(query)
        if problem:
            body = {"err_code": "Bad Request", "err_msg": problem, "request_id": str(uuid.uuid4())}
            await websocket.send_denial_response(JSONResponse(body, status_code=400))
            return
        record: dict[str, Any] = {
            "query": query,
            "headers": dict(websocket.headers),
            "audio_bytes": 0,
            "control": [],
            "closed_by": None,
        }
        self.sessions.append(record)
        await websocket.accept()
        await _ListenSession(self, websocket, query, record).run()


def _query_problem(query: dict[str, str]) -> str | None:
    encoding = query.get("encoding")
    if encoding and encoding not in ("linear16", "mulaw"):
        return f"FakeDeepgram decodes linear16 and mulaw only, not {encoding}"
    if encoding and not query.get("sample_rate", "").isdigit():
        return "sample_rate is required when encoding is specified"
    if query.get("channels", "1") != "1":
        return "FakeDeepgram supports channels=1 only"
    endpointing = query.get("endpointing", "10")
    if endpointing != "false" and not endpointing.isdigit():
        return f"Invalid endpointing value: {endpointing}"
    return None


class _ListenSession:
    """One listen connection: audio clock, speech detection, results."""

    def __init__(
        self, fake: FakeDeepgram, websocket: WebSocket, query: dict[str, str], record: dict[str, Any]
    ):
        self.fake, self.ws, self.record = fake, websocket, record
        self.request_id = str(uuid.uuid4())
        self.encoding = query.get("encoding", "linear16")
        self.rate = int(query.get("sample_rate", "16000"))
        self.interim = query.get("interim_results", "false") == "true"
        self.vad_events = query.get("vad_events", "false") == "true"
        endpointing = query.get("endpointing", "10")
        self.endpointing = None if endpointing == "false" else int(endpointing) / 1000
        utterance_end = query.get("utterance_end_ms")
        self.utterance_end = int(utterance_end) / 1000 if utterance_end else None
        self.window = self.rate // 50  # samples per 20 ms
        self.pending = np.zeros(0, dtype=np.int16)
        self.clock = 0.0  # seconds of audio received
        self.sha = hashlib.sha256()
        self.words: list[str] | None = None  # transcript of the utterance in progress
        self.speech_start = self.last_speech = 0.0
        self.revealed = 0
        self.last_final_end: float | None = None
        self.outbox: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.sender: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self.sender = asyncio.create_task(self.send_due())
        try:
            while True:
                try:
                    message = await asyncio.wait_for(self.ws.receive(), timeout=self.fake.inactivity_timeout)
                except TimeoutError:
                    self.record["closed_by"] = "NET-0001"
                    await self.ws.close(code=1011, reason=NET_0001[:120])
                    return
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    if message["bytes"] == b"":
                        await self.close_stream()
                        return
                    await self.audio(message["bytes"])
                elif message.get("text") is not None and await self.control(message["text"]):
                    return
        except WebSocketDisconnect:
            return
        finally:
            self.sender.cancel()

    async def control(self, text: str) -> bool:
        """Handle a JSON control message; True when the connection is finished."""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        self.record["control"].append(kind)
        if kind == "KeepAlive":
            return False
        if kind == "Finalize":
            await self.finalize(from_finalize=True, speech_final=False)
            return False
        if kind == "CloseStream":
            await self.close_stream()
            return True
        await self.send(
            {
                "type": "Error",
                "variant": "SchemaError",
                "description": "Could not parse the message",
                "message": text[:200],
            }
        )
        return False

    async def audio(self, data: bytes) -> None:
        self.record["audio_bytes"] += len(data)
        self.sha.update(data)
        pcm = ulaw_to_pcm16(data) if self.encoding == "mulaw" else data[: len(data) // 2 * 2]
        self.pending = np.concatenate([self.pending, np.frombuffer(pcm, dtype="<i2")])
        while len(self.pending) >= self.window:
            window, self.pending = self.pending[: self.window], self.pending[self.window :]
            self.clock += self.window / self.rate
            loud = float(np.sqrt(np.mean(window.astype(np.float64) ** 2))) > self.fake.speech_rms
            await self.step(loud)

    async def step(self, loud: bool) -> None:
        if loud:
            if self.words is None:
                text = (
                    self.fake.transcripts.popleft() if self.fake.transcripts else self.fake.default_transcript
                )
                self.words, self.revealed, self.speech_start = text.split(), 0, self.clock - 0.02
                if self.vad_events:
                    await self.send(
                        {"type": "SpeechStarted", "channel": [0], "timestamp": round(self.speech_start, 3)}
                    )
            self.last_speech = self.clock
            due = min(len(self.words) - 1, int((self.clock - self.speech_start) / 0.3))
            if self.interim and due > self.revealed:
                self.revealed = due
                self.later(self.results_message(self.words[:due], is_final=False, speech_final=False))
            return
        silence = self.clock - self.last_speech
        if self.words is not None and self.endpointing is not None:
            if silence >= max(self.endpointing, self.fake.vad_hangover):
                await self.finalize(from_finalize=False, speech_final=True)
        elif self.utterance_end and self.last_final_end is not None and silence >= self.utterance_end:
            await self.send(
                {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_final_end, 3)}
            )
            self.last_final_end = None

    async def finalize(self, *, from_finalize: bool, speech_final: bool) -> None:
        words, self.words = self.words or [], None
        message = self.results_message(
            words, is_final=True, speech_final=speech_final, from_finalize=from_finalize
        )
        if words:
            self.last_final_end = self.last_speech
        self.later(message)

    async def close_stream(self) -> None:
        if self.words is not None:
            await self.finalize(from_finalize=False, speech_final=True)
        await self.outbox.join()
        await self.send(
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self.request_id,
                "sha256": self.sha.hexdigest(),
                "created": datetime.now(UTC).isoformat(),
                "duration": round(self.clock, 3),
                "channels": 1,
                "models": [MODEL_UUID],
                "model_info": {
                    MODEL_UUID: {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}
                },
            }
        )
        self.record["closed_by"] = "CloseStream"
        await self.ws.close(code=1000)

    def results_message(
        self, words: list[str], *, is_final: bool, speech_final: bool, from_finalize: bool = False
    ) -> dict[str, Any]:
        start = round(self.speech_start, 3)
        end = max(self.last_speech, self.speech_start + 0.1)
        step = (end - start) / max(1, len(words))
        word_items = [
            {
                "word": w.strip(".,!?").lower(),
                "start": round(start + i * step, 3),
                "end": round(start + (i + 1) * step, 3),
                "confidence": 0.98,
                "punctuated_word": w,
            }
            for i, w in enumerate(words)
        ]
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(end - start, 3),
            "start": start,
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {"transcript": " ".join(words), "confidence": 0.98 if words else 0.0, "words": word_items}
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_uuid": MODEL_UUID,
                "model_info": {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"},
            },
        }

    def later(self, message: dict[str, Any]) -> None:
        """Send after `stt_latency` (processing time), keeping order."""
        self.outbox.put_nowait((time.monotonic() + self.fake.stt_latency, message))

    async def send_due(self) -> None:
        while True:
            due, message = await self.outbox.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.send(message)
            self.outbox.task_done()

    async def send(self, message: dict[str, Any]) -> None:
        if message.get("type") == "Results":
            self.fake.results.append(message)
        try:
            await self.ws.send_text(json.dumps(message))
        except (RuntimeError, WebSocketDisconnect):  # the client already went away
            pass
