"""`FakeOpenAIRealtime`: the OpenAI Realtime API websocket (`/v1/realtime?model=...`) as Pipecat
1.14's `OpenAIRealtimeLLMService` uses it (GA event names).

The server opens with `session.created`; `session.update` (needs `session.type: "realtime"`) is
merged and answered with `session.updated`. `input_audio_buffer.append` carries base64 PCM16 at
24 kHz; an energy detector on 20 ms windows plays server VAD: `input_audio_buffer.speech_started`
(and, with a response playing, the response is cancelled as `interrupt_response` does), then after
`silence_duration_ms` of quiet `speech_stopped`, `committed`, the user item
(`conversation.item.added`/`done`), `conversation.item.input_audio_transcription.completed` (when
the session asked for transcription) and, with `create_response`, a response. `response.create`
starts one too (`conversation_already_has_active_response` while one runs). A response sends
`response.created`, the assistant item, `response.output_audio_transcript.delta` and
`response.output_audio.delta` (PCM16 24 kHz: a tone per character, or espeak-ng speech with
`voice="espeak"`), the `*.done` events and `response.done` (status `completed` or `cancelled`).
`conversation.item.create` echoes the client's item id in `conversation.item.added`/`done`;
`conversation.item.truncate` answers `conversation.item.truncated`; `response.cancel`,
`input_audio_buffer.commit`/`clear` behave as documented. Unknown events get an `error` event.

Replies come from `fake.script(...)`, else "I heard you say: <last transcript>"; a scripted
`RealtimeToolCall` makes a response that calls a function (`response.function_call_arguments.done`)
and waits for the client's `function_call_output` item and next `response.create`. Transcripts of
caller speech come from `fake.transcripts`, else `default_transcript`. Knobs: `response_latency`
(response.create/turn end → first audio), `audio_realtime_factor` (0 = all audio at once, 1 = paced
in real time), `transcription_latency`. Faults (besides those of `FakeServer`): `drop_at_response(n)`
closes the socket with 1011 when response number n would start; `error_at_response(n)` sends a
`server_error` `error` event instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from tests.fakes.audio import speech_pcm16, tone_pcm16
from tests.fakes.base import ASGIApp, FakeServer
from tests.fakes.realtime_events import RealtimeEventSession, merge_session, new_id

SAMPLE_RATE = 24000
WINDOW = SAMPLE_RATE // 50  # samples in 20 ms
CHUNK_BYTES = SAMPLE_RATE * 2 // 10  # 100 ms of audio per response.output_audio.delta
CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
)
DEFAULT_TURN_DETECTION = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
}


@dataclass
class RealtimeToolCall:
    """A scripted response that calls a function instead of speaking."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


class FakeOpenAIRealtime(FakeServer):
    """Local OpenAI Realtime API. Records `.sessions` (one dict per connection)."""

    name = "openai-realtime"

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-openai",
        voice: Literal["tone", "espeak"] = "tone",
        response_latency: float = 0.0,
        audio_realtime_factor: float = 0.0,
        transcription_latency: float = 0.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.voice = voice
        self.response_latency = response_latency
        self.audio_realtime_factor = audio_realtime_factor
        self.transcription_latency = transcription_latency
        self.speech_rms = 300.0  # PCM16 RMS above which a 20 ms window is speech
        self.models = {"gpt-realtime", "gpt-realtime-mini", "gpt-realtime-2", "gpt-realtime-2.1"}
        self.replies: deque[str | RealtimeToolCall] = deque()
        self.transcripts: deque[str] = deque()
        self.default_transcript = "Hello, I would like to book an appointment."
        self.sessions: list[dict[str, Any]] = []
        self._drop_at: set[int] = set()
        self._error_at: set[int] = set()

    def script(self, *replies: str | RealtimeToolCall) -> None:
        """Queue replies: texts to speak or function calls (consumed in order by responses)."""
        self.replies.extend(replies)

    def drop_at_response(self, n: int) -> None:
        """Close the socket (1011) when the n-th response of a connection (1-based) would start."""
        self._drop_at.add(n)

    def error_at_response(self, n: int) -> None:
        """Send a `server_error` error event instead of the n-th response of a connection."""
        self._error_at.add(n)

    def reset_state(self) -> None:
        self.replies.clear()
        self.transcripts.clear()
        self.sessions.clear()
        self._drop_at.clear()
        self._error_at.clear()

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error": {"message": f"Injected failure {status}", "type": "server_error", "code": None}}

    def build_app(self) -> ASGIApp:
        return Starlette(routes=[WebSocketRoute("/v1/realtime", self._realtime)])

    async def _realtime(self, websocket: WebSocket) -> None:
        auth = websocket.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:].strip() != self.api_key:
            body = {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
            await websocket.send_denial_response(JSONResponse(body, status_code=401))
            return
        model = websocket.query_params.get("model")
        if model not in self.models:
            body = {
                "error": {
                    "message": f"The model `{model}` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "code": "model_not_found",
                }
            }
            await websocket.send_denial_response(JSONResponse(body, status_code=404))
            return
        record: dict[str, Any] = {
            "model": model,
            "headers": dict(websocket.headers),
            "events": [],  # every client event, audio payloads left out
            "session": {},  # the session as last updated
            "items": [],  # conversation.item.create items
            "audio_bytes": 0,
            "responses": [],  # {"text", "status"} per response
            "sent": [],  # types of the server events sent
        }
        self.sessions.append(record)
        await websocket.accept()
        await _RealtimeSession(self, websocket, model, record).run()


class _RealtimeSession(RealtimeEventSession):
    """One connection: session config, input audio buffer with VAD, conversation, responses."""

    client_events = CLIENT_EVENTS

    def __init__(self, fake: FakeOpenAIRealtime, websocket: WebSocket, model: str, record: dict[str, Any]):
        super().__init__(websocket, record)
        self.fake = fake
        self.session = {
            "type": "realtime",
            "object": "realtime.session",
            "id": new_id("sess"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": dict(DEFAULT_TURN_DETECTION),
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                    "voice": "alloy",
                    "speed": 1.0,
                },
            },
        }
        self.pending = np.zeros(0, dtype=np.int16)
        self.clock_ms = 0  # ms of input audio received
        self.speech_item: str | None = None  # item id of the speech in progress
        self.speech_start_ms = self.last_speech_ms = 0
        self.buffer_has_audio = False
        self.last_item_id: str | None = None
        self.last_transcript: str | None = None
        self.response: asyncio.Task[None] | None = None
        self.responses = 0

    def background_tasks(self) -> list[asyncio.Task[None] | None]:
        return [self.response]

    # -- session ----------------------------------------------------------------------------------
    async def on_session_update(self, event: dict[str, Any]) -> None:
        update = event.get("session")
        if not isinstance(update, dict) or update.get("type") != "realtime":
            await self.error(
                "Missing required parameter: 'session.type'.",
                code="missing_required_parameter",
                event_id=event.get("event_id"),
                param="session.type",
            )
            return
        merge_session(self.session, {k: v for k, v in update.items() if k != "model"})
        self.record["session"] = json.loads(json.dumps(self.session))
        await self.send({"type": "session.updated", "session": self.session})

    def turn_detection(self) -> dict[str, Any] | None:
        value = self.session["audio"]["input"].get("turn_detection")
        if value is None or value is False:
            return None
        return (
            {**DEFAULT_TURN_DETECTION, **value} if isinstance(value, dict) else dict(DEFAULT_TURN_DETECTION)
        )

    # -- input audio ------------------------------------------------------------------------------
    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(event.get("audio") or "", validate=True)
        except ValueError:
            await self.error("Invalid 'audio': not base64.", code="invalid_value", param="audio")
            return
        self.record["audio_bytes"] += len(audio)
        self.buffer_has_audio = True
        self.pending = np.concatenate([self.pending, np.frombuffer(audio[: len(audio) // 2 * 2], "<i2")])
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            self.clock_ms += 20
            loud = float(np.sqrt(np.mean(window.astype(np.float64) ** 2))) > self.fake.speech_rms
            await self.vad_step(loud)

    async def vad_step(self, loud: bool) -> None:
        detection = self.turn_detection()
        if detection is None:
            return
        if loud:
            self.last_speech_ms = self.clock_ms
            if self.speech_item is None:
                self.speech_item = new_id("item")
                self.speech_start_ms = max(0, self.clock_ms - 20 - int(detection["prefix_padding_ms"] or 0))
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": self.speech_start_ms,
                        "item_id": self.speech_item,
                    }
                )
                if detection.get("interrupt_response", True):
                    await self.cancel_response()
            return
        if (
            self.speech_item is not None
            and self.clock_ms - self.last_speech_ms >= detection["silence_duration_ms"]
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
            if detection.get("create_response", True):
                await self.start_response()

    async def commit(self, item_id: str) -> None:
        """The input buffer becomes a user item (with its transcript when transcription is on)."""
        previous, self.last_item_id = self.last_item_id, item_id
        self.buffer_has_audio = False
        await self.send(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        transcript = (
            self.fake.transcripts.popleft() if self.fake.transcripts else self.fake.default_transcript
        )
        self.last_transcript = transcript
        if self.session["audio"]["input"].get("transcription"):
            if self.fake.transcription_latency:
                await asyncio.sleep(self.fake.transcription_latency)
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": {"type": "duration", "seconds": 1},
                }
            )

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if not self.buffer_has_audio:
            await self.error(
                "Error committing input audio buffer: buffer too small.",
                code="input_audio_buffer_commit_empty",
                event_id=event.get("event_id"),
            )
            return
        item_id, self.speech_item = self.speech_item or new_id("item"), None
        await self.commit(item_id)

    async def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.speech_item, self.buffer_has_audio = None, False
        self.pending = np.zeros(0, dtype=np.int16)
        await self.send({"type": "input_audio_buffer.cleared"})

    # -- conversation -----------------------------------------------------------------------------
    async def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in (
            "message",
            "function_call",
            "function_call_output",
        ):
            await self.error(
                "Invalid value for 'item.type'.",
                code="invalid_value",
                event_id=event.get("event_id"),
                param="item.type",
            )
            return
        if item["type"] == "message" and item.get("role") not in ("user", "assistant", "system"):
            await self.error(
                "Missing required parameter: 'item.role'.",
                code="missing_required_parameter",
                event_id=event.get("event_id"),
                param="item.role",
            )
            return
        item = {"object": "realtime.item", "status": "completed", **item}
        item.setdefault("id", new_id("item"))
        self.record["items"].append(item)
        previous, self.last_item_id = self.last_item_id, item["id"]
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": event.get("item_id"),
                "content_index": event.get("content_index", 0),
                "audio_end_ms": event.get("audio_end_ms", 0),
            }
        )

    async def on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        await self.send({"type": "conversation.item.deleted", "item_id": event.get("item_id")})

    async def on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        for item in self.record["items"]:
            if item["id"] == item_id:
                await self.send({"type": "conversation.item.retrieved", "item": item})
                return
        await self.error(
            f"Item with item_id not found: {item_id}",
            code="item_retrieve_invalid_item_id",
            event_id=event.get("event_id"),
        )

    # -- responses --------------------------------------------------------------------------------
    async def on_response_create(self, event: dict[str, Any]) -> None:
        if self.response is not None and not self.response.done():
            await self.error(
                "Conversation already has an active response in progress.",
                code="conversation_already_has_active_response",
                event_id=event.get("event_id"),
            )
            return
        await self.start_response()

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        if not await self.cancel_response():
            await self.error(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
                event_id=event.get("event_id"),
            )

    async def cancel_response(self) -> bool:
        task = self.response
        if task is None or task.done():
            return False
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return True

    async def start_response(self) -> None:
        self.responses += 1
        if self.responses in self.fake._drop_at:
            self.closed = True
            await self.ws.close(code=1011, reason="injected drop")
            return
        if self.responses in self.fake._error_at:
            await self.error(
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
            )
            return
        reply = self.fake.replies.popleft() if self.fake.replies else None
        if isinstance(reply, RealtimeToolCall):
            self.response = asyncio.create_task(self.call_function(reply))
            return
        if reply is not None:
            text = reply
        elif self.last_transcript:
            text = f"I heard you say: {self.last_transcript}"
        else:
            text = "Hello! How can I help you today?"
        self.response = asyncio.create_task(self.respond(text))

    async def respond(self, text: str) -> None:
        response_id, item_id = new_id("resp"), new_id("item")
        voice = self.session["audio"]["output"].get("voice") or "alloy"
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": "conv_fake",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": voice}},
            "usage": None,
            "metadata": None,
        }
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        record = {"text": text, "status": "in_progress", "audio_bytes": 0}
        self.record["responses"].append(record)
        said: list[str] = []
        await self.send({"type": "response.created", "response": response})
        try:
            if self.fake.response_latency:
                await asyncio.sleep(self.fake.response_latency)
            previous, self.last_item_id = self.last_item_id, item_id
            await self.send(
                {
                    "type": "response.output_item.added",
                    "response_id": response_id,
                    "output_index": 0,
                    "item": item,
                }
            )
            await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
            await self.send(
                {"type": "response.content_part.added", **where, "part": {"type": "audio", "transcript": ""}}
            )
            audio = await self.reply_audio(text)
            words = [w + " " for w in text.split(" ")]
            words[-1] = words[-1].rstrip()
            chunks = [audio[i : i + CHUNK_BYTES] for i in range(0, len(audio), CHUNK_BYTES)] or [b""]
            for index, chunk in enumerate(chunks):
                due = len(words) * (index + 1) // len(chunks)  # the transcript runs just ahead of the audio
                while len(said) < due:
                    said.append(words[len(said)])
                    await self.send(
                        {"type": "response.output_audio_transcript.delta", **where, "delta": said[-1]}
                    )
                await self.send(
                    {
                        "type": "response.output_audio.delta",
                        **where,
                        "delta": base64.b64encode(chunk).decode(),
                    }
                )
                record["audio_bytes"] += len(chunk)
                if self.fake.audio_realtime_factor:
                    await asyncio.sleep(len(chunk) / (2 * SAMPLE_RATE) * self.fake.audio_realtime_factor)
            status = "completed"
        except asyncio.CancelledError:
            status = "cancelled"
        transcript = "".join(said)
        record["status"] = status
        item.update(
            status="completed" if status == "completed" else "incomplete",
            content=[{"type": "output_audio", "transcript": transcript}],
        )
        await self.send({"type": "response.output_audio.done", **where})
        await self.send({"type": "response.output_audio_transcript.done", **where, "transcript": transcript})
        await self.send(
            {
                "type": "response.content_part.done",
                **where,
                "part": {"type": "audio", "transcript": transcript},
            }
        )
        await self.send(
            {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}
        )
        await self.send({"type": "conversation.item.done", "previous_item_id": None, "item": item})
        details = {"type": "cancelled", "reason": "turn_detected"} if status == "cancelled" else None
        words_out = len(transcript.split())
        response.update(
            status=status,
            status_details=details,
            output=[item],
            usage={
                "total_tokens": 40 + words_out,
                "input_tokens": 40,
                "output_tokens": words_out,
                "input_token_details": {"text_tokens": 30, "audio_tokens": 10, "cached_tokens": 0},
                "output_token_details": {"text_tokens": words_out, "audio_tokens": 0},
            },
        )
        await self.send({"type": "response.done", "response": response})

    async def call_function(self, call: RealtimeToolCall) -> None:
        """A response whose output is one function call (the client answers with its output)."""
        response_id, item_id, call_id = new_id("resp"), new_id("item"), new_id("call")
        arguments = json.dumps(call.arguments)
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "output": [],
            "output_modalities": ["audio"],
        }
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        self.record["responses"].append({"function_call": call.name, "status": "in_progress"})
        await self.send({"type": "response.created", "response": response})
        if self.fake.response_latency:
            await asyncio.sleep(self.fake.response_latency)
        previous, self.last_item_id = self.last_item_id, item_id
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": 0,
                "item": item,
            }
        )
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        await self.send({"type": "response.function_call_arguments.delta", **where, "delta": arguments})
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": call.name,
                "arguments": arguments,
            }
        )
        item.update(status="completed", arguments=arguments)
        await self.send(
            {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}
        )
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        response.update(status="completed", output=[item])
        self.record["responses"][-1]["status"] = "completed"
        await self.send({"type": "response.done", "response": response})

    async def reply_audio(self, text: str) -> bytes:
        if self.fake.voice == "espeak":
            return await asyncio.to_thread(speech_pcm16, text, SAMPLE_RATE)
        return tone_pcm16(text, SAMPLE_RATE)
