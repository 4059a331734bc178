"""`FakeOpenAIRealtimeSTT`: OpenAI realtime transcription — a transcription session over the
Realtime websocket (`/v1/realtime?intent=transcription`, `Authorization: Bearer …`) — as Pipecat
1.14's `OpenAIRealtimeSTTService` uses it.

The server opens with `session.created` (a `transcription` session, server VAD on by default);
`session.update` with `session.type: "transcription"` is merged and answered with
`session.updated` (Pipecat sends the transcription model, `language` and `turn_detection: null`:
its local VAD commits). `input_audio_buffer.append` carries base64 audio in the session's input
format (`audio/pcm` at 24 kHz, or `audio/pcmu`). `input_audio_buffer.commit` — or, with
`turn_detection` `server_vad`, 20 ms windows above `speech_rms` (`speech_started`) followed by
`silence_duration_ms` of quiet (`speech_stopped`) — answers `input_audio_buffer.committed` at once,
then `stt_latency` later one `conversation.item.input_audio_transcription.delta` per word and
`.completed`. A commit of less than 100 ms of audio is refused (`input_audio_buffer_commit_empty`);
`input_audio_buffer.clear` answers `input_audio_buffer.cleared`; other events get an `error`.

What a committed buffer says is decided as FakeOpenAI's `/v1/audio/transcriptions` decides it:
audio above the silence level (`SILENCE_RMS`, measured per half second because a streaming buffer
also holds the quiet between turns) is speech and gets the next of `fake.transcripts`, else
`default_transcript`; silence is transcribed as "" (no delta).

Faults, besides `FakeServer`'s at the handshake (`fail_next()` = 500, `fail_next(status=401)`,
`hang_next()` = accept and never speak, `drop_next()` = close 1011 after `session.created`):
`drop_at_commit(n)` closes the socket (1011) when the n-th commit of a connection arrives;
`hang_at_commit(n)` commits the n-th buffer and never transcribes it. `.commits` records every
commit of every connection (`at` = time.monotonic() of the commit, `transcript`, `completed_at`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.audio import ulaw_to_pcm16
from tests.fakes.base import ASGIApp, FakeServer
from tests.fakes.openai_audio import SILENCE_RMS
from tests.fakes.realtime_events import RealtimeEventSession, merge_session, new_id

SAMPLE_RATE = 24000
MIN_COMMIT_MS = 100
TRANSCRIPTION_MODELS = (
    "gpt-realtime-whisper",
    "gpt-live-transcribe",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "whisper-1",
)
CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
DEFAULT_TURN_DETECTION = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}


@dataclass
class Commit:
    """One committed buffer: when, how much audio, what it was transcribed as and when."""

    item_id: str
    at: float
    audio_ms: int
    transcript: str | None = None  # None while (or if never) transcribed
    completed_at: float | None = None


def heard_speech(pcm: bytes) -> bool:
    """Whether 24 kHz PCM16 holds speech: some half second above FakeOpenAI's silence level."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    step = SAMPLE_RATE // 2
    for start in range(0, len(samples), step):
        window = samples[start : start + step]
        if len(window) and float(np.sqrt(np.mean(window * window))) >= SILENCE_RMS:
            return True
    return False


class FakeOpenAIRealtimeSTT(FakeServer):
    """Local OpenAI realtime transcription. Records `.sessions` (one dict per connection) and
    `.commits`; knobs `stt_latency`, `speech_rms`; queue `transcripts`."""

    name = "openai-realtime-stt"

    def __init__(self, *, api_key: str = "sk-fake-openai", stt_latency: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.stt_latency = stt_latency  # commit → completed
        self.speech_rms = 300.0  # server VAD: PCM16 RMS above which a 20 ms window is speech
        self.transcripts: deque[str] = deque()
        self.default_transcript = "Hello, I would like to book an appointment."
        self.sessions: list[dict[str, Any]] = []
        self.commits: list[Commit] = []
        self._drop_at: set[int] = set()
        self._hang_at: set[int] = set()

    def drop_at_commit(self, n: int) -> None:
        """Close the socket (1011) when the n-th commit of a connection (1-based) arrives."""
        self._drop_at.add(n)

    def hang_at_commit(self, n: int) -> None:
        """Commit the n-th buffer of a connection but never send its transcription."""
        self._hang_at.add(n)

    def reset_state(self) -> None:
        self.transcripts.clear()
        self.sessions.clear()
        self.commits.clear()
        self._drop_at.clear()
        self._hang_at.clear()

    def error_body(self, status: int) -> dict[str, Any]:
        if status == 401:
            return _error("Incorrect API key provided.", code="invalid_api_key")
        return _error(f"Injected failure {status}", type_="server_error")

    def next_transcript(self, pcm: bytes) -> str:
        """What a committed buffer says (see the module docstring)."""
        if not heard_speech(pcm):
            return ""
        return self.transcripts.popleft() if self.transcripts else self.default_transcript

    def build_app(self) -> ASGIApp:
        return Starlette(routes=[WebSocketRoute("/v1/realtime", self._realtime)])

    async def _realtime(self, websocket: WebSocket) -> None:
        auth = websocket.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:].strip() != self.api_key:
            body = _error("Incorrect API key provided.", code="invalid_api_key")
            await websocket.send_denial_response(JSONResponse(body, status_code=401))
            return
        if websocket.query_params.get("intent") != "transcription":
            body = _error(
                "FakeOpenAIRealtimeSTT serves transcription sessions: connect with ?intent=transcription "
                "(conversation sessions with ?model= are FakeOpenAIRealtime's).",
                code="invalid_intent",
            )
            await websocket.send_denial_response(JSONResponse(body, status_code=400))
            return
        record: dict[str, Any] = {
            "query": dict(websocket.query_params),
            "headers": dict(websocket.headers),
            "events": [],  # every client event, audio payloads left out
            "session": {},  # the session as last updated
            "audio_bytes": 0,
            "commits": [],  # Commit per commit of this connection
            "sent": [],  # types of the server events sent
        }
        self.sessions.append(record)
        await websocket.accept()
        await _TranscriptionSession(self, websocket, record).run()


def _error(message: str, *, code: str | None = None, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class _TranscriptionSession(RealtimeEventSession):
    """One connection: session config, input audio buffer (with optional server VAD), commits."""

    client_events = CLIENT_EVENTS

    def __init__(self, fake: FakeOpenAIRealtimeSTT, websocket: WebSocket, record: dict[str, Any]) -> None:
        super().__init__(websocket, record)
        self.fake = fake
        self.session = {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": new_id("sess"),
            "expires_at": int(time.time()) + 1800,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": dict(DEFAULT_TURN_DETECTION),
                }
            },
            "include": None,
        }
        self.buffer = bytearray()  # PCM16 at 24 kHz since the last commit/clear
        self.vad_pending = np.zeros(0, dtype=np.int16)
        self.clock_ms = 0  # ms of input audio received
        self.speech_item: str | None = None  # server VAD: item id of the speech in progress
        self.last_speech_ms = 0
        self.last_item_id: str | None = None
        self.commits = 0
        self.transcribing: asyncio.Task[None] | None = None  # the latest transcription (kept in order)

    def background_tasks(self) -> list[asyncio.Task[None] | None]:
        return [self.transcribing]

    # -- session ----------------------------------------------------------------------------------
    async def on_session_update(self, event: dict[str, Any]) -> None:
        update, event_id = event.get("session"), event.get("event_id")
        if not isinstance(update, dict) or update.get("type") != "transcription":
            await self.error(
                "Invalid value for 'session.type': a transcription session only accepts "
                "session.type 'transcription'.",
                code="invalid_value",
                event_id=event_id,
                param="session.type",
            )
            return
        audio_in = ((update.get("audio") or {}).get("input")) or {}
        problem = _input_problem(audio_in)
        if problem:
            await self.error(problem[1], code="invalid_value", event_id=event_id, param=problem[0])
            return
        merge_session(self.session, update)
        self.record["session"] = json.loads(json.dumps(self.session))
        await self.send({"type": "session.updated", "session": self.session})

    def input_format(self) -> str:
        return str(self.session["audio"]["input"]["format"].get("type", "audio/pcm"))

    # -- input audio ------------------------------------------------------------------------------
    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(event.get("audio") or "", validate=True)
        except ValueError:
            await self.error("Invalid 'audio': not base64.", code="invalid_value", param="audio")
            return
        self.record["audio_bytes"] += len(audio)
        if self.input_format() == "audio/pcmu":
            pcm = _upsample_8k(ulaw_to_pcm16(audio))
        else:
            pcm = audio[: len(audio) // 2 * 2]
        self.buffer += pcm
        detection = self.session["audio"]["input"].get("turn_detection")
        if detection:
            await self.server_vad({**DEFAULT_TURN_DETECTION, **detection}, pcm)

    async def server_vad(self, detection: dict[str, Any], pcm: bytes) -> None:
        window = SAMPLE_RATE // 50
        self.vad_pending = np.concatenate([self.vad_pending, np.frombuffer(pcm, dtype="<i2")])
        while len(self.vad_pending) >= window:
            chunk, self.vad_pending = self.vad_pending[:window], self.vad_pending[window:]
            self.clock_ms += 20
            if float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) > self.fake.speech_rms:
                self.last_speech_ms = self.clock_ms
                if self.speech_item is None:
                    self.speech_item = new_id("item")
                    start = max(0, self.clock_ms - 20 - int(detection.get("prefix_padding_ms") or 0))
                    await self.send(
                        {
                            "type": "input_audio_buffer.speech_started",
                            "audio_start_ms": start,
                            "item_id": self.speech_item,
                        }
                    )
            elif self.speech_item and self.clock_ms - self.last_speech_ms >= int(
                detection["silence_duration_ms"]
            ):
                item_id, self.speech_item = self.speech_item, None
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": self.last_speech_ms,
                        "item_id": item_id,
                    }
                )
                await self.commit(item_id)

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        audio_ms = len(self.buffer) * 1000 // (2 * SAMPLE_RATE)
        if audio_ms < MIN_COMMIT_MS:
            await self.error(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of "
                f"audio, but buffer only has {audio_ms:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
                event_id=event.get("event_id"),
            )
            return
        item_id, self.speech_item = self.speech_item or new_id("item"), None
        await self.commit(item_id)

    async def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self.speech_item = None
        await self.send({"type": "input_audio_buffer.cleared"})

    async def commit(self, item_id: str) -> None:
        """The buffer becomes a user item: `committed` now, its transcription `stt_latency` later."""
        self.commits += 1
        if self.commits in self.fake._drop_at:
            self.closed = True
            await self.ws.close(code=1011, reason="injected drop")
            return
        pcm, self.buffer = bytes(self.buffer), bytearray()
        commit = Commit(item_id, time.monotonic(), len(pcm) * 1000 // (2 * SAMPLE_RATE))
        self.fake.commits.append(commit)
        self.record["commits"].append(commit)
        previous, self.last_item_id = self.last_item_id, item_id
        await self.send(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        if self.commits in self.fake._hang_at:
            return
        earlier = self.transcribing
        self.transcribing = asyncio.create_task(self.transcribe(commit, pcm, earlier))

    async def transcribe(self, commit: Commit, pcm: bytes, earlier: asyncio.Task[None] | None) -> None:
        transcript = self.fake.next_transcript(pcm)
        await asyncio.sleep(max(0.0, commit.at + self.fake.stt_latency - time.monotonic()))
        if earlier is not None:  # transcriptions arrive in commit order
            await asyncio.gather(earlier, return_exceptions=True)
        where = {"item_id": commit.item_id, "content_index": 0}
        words = transcript.split(" ") if transcript else []
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            await self.send(
                {"type": "conversation.item.input_audio_transcription.delta", **where, "delta": delta}
            )
        seconds = round(commit.audio_ms / 1000, 3)
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                **where,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": seconds},
            }
        )
        commit.transcript, commit.completed_at = transcript, time.monotonic()


def _input_problem(audio_in: dict[str, Any]) -> tuple[str, str] | None:
    """(param, message) when a session.update's `audio.input` asks for what the API refuses."""
    fmt = audio_in.get("format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind not in ("audio/pcm", "audio/pcmu"):
            return (
                "session.audio.input.format.type",
                f"Invalid value: '{kind}'. FakeOpenAIRealtimeSTT decodes 'audio/pcm' and 'audio/pcmu'.",
            )
        if kind == "audio/pcm" and fmt.get("rate", SAMPLE_RATE) != SAMPLE_RATE:
            return "session.audio.input.format.rate", "Only a 24kHz sample rate is supported for 'audio/pcm'."
    transcription = audio_in.get("transcription")
    if isinstance(transcription, dict) and transcription.get("model") not in TRANSCRIPTION_MODELS:
        return (
            "session.audio.input.transcription.model",
            f"Invalid value: '{transcription.get('model')}'. Supported values are: "
            + ", ".join(TRANSCRIPTION_MODELS)
            + ".",
        )
    detection = audio_in.get("turn_detection")
    if isinstance(detection, dict) and detection.get("type") not in ("server_vad", None):
        return (
            "session.audio.input.turn_detection.type",
            "FakeOpenAIRealtimeSTT implements 'server_vad' only.",
        )
    return None


def _upsample_8k(pcm: bytes) -> bytes:
    """8 kHz PCM16 (decoded mu-law) repeated to 24 kHz: the buffer is kept at one rate."""
    return np.repeat(np.frombuffer(pcm, dtype="<i2"), SAMPLE_RATE // 8000).astype("<i2").tobytes()
