"""One ElevenLabs multi-context websocket (`/v1/text-to-speech/{voice_id}/multi-stream-input`).

Client → server: `{"text": " ", "context_id", "voice_settings"?}` opens a context (voice_settings
only on a context's first message), `{"text": "...", "context_id"}` queues text, `{"text": ""}`
is a keepalive, `{"flush": true, "context_id"}` generates buffered text, `{"close_context": true,
"context_id"}` finishes what is queued then answers `{"isFinal": true, "contextId"}`,
`{"close_socket": true}` ends the connection. Server → client: `{"audio": base64, "contextId",
"alignment": {"chars", "charStartTimesMs", "charDurationsMs"}, "normalizedAlignment"}` with times
restarting at 0 in every message. With `auto_mode=false` text is buffered until 120 characters or a
flush, as the real chunk schedule does; with `auto_mode=true` each text message is spoken at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.audio import MS_PER_CHAR, pcm16_to_ulaw, tone_pcm16

if TYPE_CHECKING:
    from tests.fakes.elevenlabs import FakeElevenLabs

FIRST_CHUNK_CHARS = 120  # ElevenLabs' default chunk_length_schedule starts at 120 characters
POLICY_VIOLATION = 1008


@dataclass
class ContextRecord:
    """What one context received and sent (for assertions)."""

    context_id: str
    connection: int
    voice_settings: dict[str, Any] | None = None
    texts: list[str] = field(default_factory=list)
    flushes: int = 0
    closed: bool = False
    final_sent: bool = False
    spoken: str = ""
    audio_bytes: int = 0
    opened_at: float = field(default_factory=time.monotonic)
    first_audio_at: float | None = None

    @property
    def text(self) -> str:
        """All text received for this context, joined as ElevenLabs would speak it."""
        return "".join(self.texts)


def encode_audio(text: str, output_format: str) -> bytes:
    """The fake's speech for `text` in an ElevenLabs output format (pcm_RATE or ulaw_8000)."""
    kind, _, rate = output_format.partition("_")
    pcm = tone_pcm16(text, int(rate))
    return pcm16_to_ulaw(pcm) if kind == "ulaw" else pcm


def bytes_per_char(output_format: str) -> int:
    kind, _, rate = output_format.partition("_")
    return int(rate) * MS_PER_CHAR // 1000 * (1 if kind == "ulaw" else 2)


def chunk_text(text: str, size: int = 24) -> list[str]:
    """Split text into audio-message sized pieces at spaces (never empty)."""
    pieces, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > size:
            pieces.append(current + " ")
            current = word
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces


class MultiContextSession:
    """Serves one websocket connection for a `FakeElevenLabs`."""

    def __init__(
        self,
        fake: FakeElevenLabs,
        websocket: WebSocket,
        output_format: str,
        auto_mode: bool,
        inactivity_timeout: float,
        connection: int,
    ) -> None:
        self.fake, self.ws = fake, websocket
        self.output_format, self.auto_mode = output_format, auto_mode
        self.inactivity_timeout, self.connection = inactivity_timeout, connection
        self.buffers: dict[str, str] = {}
        self.queues: dict[str, asyncio.Queue[str | None]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.send_lock = asyncio.Lock()
        self.closing = False

    async def run(self) -> None:
        try:
            while not self.closing:
                try:
                    raw = await asyncio.wait_for(self.ws.receive_text(), timeout=self.inactivity_timeout)
                except TimeoutError:
                    await self.close(
                        POLICY_VIOLATION,
                        "Have not received a new text input within the "
                        f"inactivity timeout of {self.inactivity_timeout:g} seconds",
                    )
                    return
                await self.handle(raw)
        except WebSocketDisconnect:
            pass
        finally:
            for worker in self.workers.values():
                worker.cancel()

    async def close(self, code: int, reason: str) -> None:
        self.closing = True
        for worker in self.workers.values():
            worker.cancel()
        self.fake.close_codes.append((code, reason))
        try:
            await self.ws.close(code=code, reason=reason)
        except RuntimeError:  # already closed
            pass

    async def handle(self, raw: str) -> None:
        try:
            message = json.loads(raw)
            assert isinstance(message, dict)
        except (ValueError, AssertionError):
            await self.close(POLICY_VIOLATION, "Invalid message: expected a JSON object")
            return
        self.fake.messages.append(message)
        if message.get("close_socket"):
            await self.close(1000, "")
            return
        context_id = message.get("context_id")
        if context_id is None:
            if message.get("text") not in ("", None):
                await self.close(
                    POLICY_VIOLATION, "Invalid message: text needs a context_id on multi-stream-input"
                )
            return  # a context-less keepalive
        record = self.fake.contexts.get(context_id)
        if record is None or record.final_sent:
            if message.get("close_context") or message.get("flush"):
                return  # closing or flushing an unknown context is harmless
            if not await self.open_context(context_id, message):
                return
            record = self.fake.contexts[context_id]
        elif "voice_settings" in message:
            await self.close(
                POLICY_VIOLATION, "voice_settings can only be sent in the first message of a context"
            )
            return
        text = message.get("text")
        if isinstance(text, str) and text.strip():
            record.texts.append(text)
            self.buffers[context_id] = self.buffers.get(context_id, "") + text
            if self.auto_mode or len(self.buffers[context_id]) >= FIRST_CHUNK_CHARS:
                self.generate(context_id)
        if message.get("flush"):
            record.flushes += 1
            self.generate(context_id)
        if message.get("close_context"):
            record.closed = True
            self.generate(context_id)
            self.queues[context_id].put_nowait(None)  # the worker answers isFinal after the queued text

    async def open_context(self, context_id: str, message: dict[str, Any]) -> bool:
        open_now = [
            c for c in self.fake.contexts.values() if c.connection == self.connection and not c.final_sent
        ]
        if len(open_now) >= self.fake.max_contexts:
            await self.close(
                POLICY_VIOLATION, f"Maximum number of contexts ({self.fake.max_contexts}) exceeded"
            )
            return False
        self.fake.contexts[context_id] = ContextRecord(
            context_id, self.connection, voice_settings=message.get("voice_settings")
        )
        self.queues[context_id] = asyncio.Queue()
        self.workers[context_id] = asyncio.create_task(self.speak(context_id))
        return True

    def generate(self, context_id: str) -> None:
        text = self.buffers.pop(context_id, "")
        if text.strip():
            self.queues[context_id].put_nowait(text)

    async def speak(self, context_id: str) -> None:
        """Per-context worker: synthesise queued text in order; isFinal after close_context."""
        record, queue = self.fake.contexts[context_id], self.queues[context_id]
        while True:
            text = await queue.get()
            if text is None:
                record.final_sent = True
                await self.send({"isFinal": True, "contextId": context_id})
                return
            await asyncio.sleep(self.fake.first_audio_latency)
            for piece in chunk_text(text):
                audio = encode_audio(piece, self.output_format)
                chars = list(piece)
                alignment = {
                    "chars": chars,
                    "charStartTimesMs": [i * MS_PER_CHAR for i in range(len(chars))],
                    "charDurationsMs": [MS_PER_CHAR] * len(chars),
                }
                await self.send(
                    {
                        "audio": base64.b64encode(audio).decode(),
                        "isFinal": None,
                        "normalizedAlignment": alignment,
                        "alignment": alignment,
                        "contextId": context_id,
                    }
                )
                record.first_audio_at = record.first_audio_at or time.monotonic()
                record.audio_bytes += len(audio)
                record.spoken += piece
                if self.fake.realtime_factor:
                    await asyncio.sleep(len(chars) * MS_PER_CHAR / 1000 / self.fake.realtime_factor)

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            if not self.closing:
                await self.ws.send_text(json.dumps(message))
