"""Streaming STT: OpenAI realtime transcription while the caller speaks; the STT ladder when it cannot.

``StreamingSTTService`` is Pipecat's ``OpenAIRealtimeSTTService`` (a transcription session on
``realtime_base_url?intent=transcription``, local VAD: ``turn_detection`` null) with three changes:

- **Audio goes out while the caller speaks**, not all call long: from the moment Silero hears speech
  (with ``PRE_ROLL_SECS`` of the audio before it), as 8 kHz mu-law (``audio/pcmu``: the phone's own
  audio, nothing resampled; a 16 kHz web call goes as 24 kHz PCM) in messages of ``SEND_EVERY_SECS``.
- **The buffer is committed as soon as the caller pauses** (``COMMIT_AFTER_SECS`` of silence, before
  VAD's own stop), so the transcript is on its way while VAD and smart-turn decide. A caller who goes
  on after the pause gets a second commit; the turn's text is both transcripts
  (``voice/turn_end.py`` waits for every commit of a turn). A completed transcript is final for its
  commit (``finalized``), so the turn never waits out Pipecat's STT timeout.
- **Every commit has a fallback.** Each committed segment is kept until its transcript arrives; a
  session that is refused (401, connection refused), drops, reports an error, or leaves a commit
  unanswered for ``STREAM_DEADLINE_SECS`` hands that segment, and every later one of the call, to the
  segmented STT ladder (``LadderSTTService``: its rungs, hedging and rescue). Nothing is retried on the
  socket during the call: the ladder is already as fast as a reconnect.

The service takes the caller's audio from the call's VAD (``on_vad_state``, called by the user
aggregator's Silero step for every frame), not from its own place in the pipeline: the STT then sees
each frame together with the VAD's verdict on it, even when the aggregator runs behind the caller
(smart-turn or a busy event loop holding it up). Each commit is counted in ``segments`` at once and
closed downstream with ``SegmentSettledFrame`` (after its ``TranscriptionFrame``, if it had words),
so the end of turn can tell a turn whose last words are still being transcribed from one that is over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from loguru import logger
from pipecat.audio.utils import pcm_to_wav
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.frames.frames import DataFrame, InputAudioRawFrame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.stt import OpenAIRealtimeSTTService, OpenAIRealtimeSTTSettings
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from phone_agent.ops import metrics
from phone_agent.ops.provider_health import ProviderHealth, error_kind, report_provider_error
from phone_agent.voice.stt_ladder import LadderSTTService, STTExhausted

PRE_ROLL_SECS = 0.3  # audio before Silero's first speech window (start of the first word)
SEND_EVERY_SECS = 0.06  # one append message per this much audio (3 phone frames)
COMMIT_AFTER_SECS = 0.096  # three windows of silence (from the last loud one): the caller paused
MIN_COMMIT_SECS = 0.1  # OpenAI refuses a commit of less audio
STREAM_DEADLINE_SECS = 1.0  # a commit unanswered this long goes to the ladder
CONNECT_TIMEOUT_SECS = 5.0
PHONE_RATE = 8000  # sent as audio/pcmu, the phone's own encoding
OPENAI_PCM_RATE = 24000  # any other rate (web calls) is sent as audio/pcm at this rate
SPEECH_STATES = (VADState.STARTING, VADState.SPEAKING)


@dataclass
class SegmentCounter:
    """Commits made by the call's streaming STT, and how many of them the turn end saw settled.

    ``committed`` grows the moment a pause is committed (in the aggregator's VAD step, in audio
    order); ``settled`` when the turn end processes the segment's ``SegmentSettledFrame`` (after its
    transcript): so the turn end never takes a pause for the end while words are on their way.
    """

    committed: int = 0
    sent: int = 0  # settled by the STT: its frames are on their way to the turn end
    settled: int = 0

    @property
    def pending(self) -> int:
        return self.committed - self.settled

    @property
    def in_flight(self) -> int:
        """Settled frames queued for the turn end (certain to arrive, however far behind it runs)."""
        return self.sent - self.settled

    def settle_one(self) -> None:
        self.settled = min(self.committed, self.settled + 1)

    def forget(self) -> None:
        """The turn ended without them: a late transcript starts the next turn."""
        self.settled = self.sent = self.committed


@dataclass
class SegmentSettledFrame(DataFrame):
    """A committed segment is transcribed (its ``TranscriptionFrame`` went just before, if any)."""

    text: str = ""


@dataclass(eq=False)
class _Segment:
    pcm: bytes  # 16-bit 8 kHz: what the ladder gets if the stream cannot transcribe it
    committed_at: float
    item_id: str | None = None
    done: bool = False
    timer: asyncio.Task[None] | None = field(default=None, repr=False)


def _ulaw_table() -> np.ndarray:
    """G.711 mu-law code of every 16-bit sample (as unsigned index)."""
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


ULAW = _ulaw_table()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM → mu-law bytes."""
    return ULAW[np.frombuffer(pcm, dtype="<u2")].tobytes()


class StreamingSTTService(OpenAIRealtimeSTTService):
    """OpenAI realtime transcription driven by the call's VAD, with the STT ladder as fallback."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        model: str,
        fallback: LadderSTTService,
        health: ProviderHealth | None = None,
        refusal_is_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            settings=OpenAIRealtimeSTTService.Settings(model=model),
            reconnect_on_error=False,
            **kwargs,
        )
        self.fallback, self.health = fallback, health
        # False: an endpoint nobody configured for realtime transcription (an OpenAI-compatible
        # server's host): refusing the handshake only means it has none, not that it failed
        self.refusal_is_failure = refusal_is_failure
        self.streaming = True  # False once the session failed: the ladder for the rest of the call
        self.failure: str | None = None
        self._ring: deque[bytes] = deque()  # the last PRE_ROLL_SECS of audio while the caller is quiet
        self._ring_bytes = 0
        self._sending = False  # the caller is speaking: audio goes out (and into the segment)
        self._heard_speech = False  # VAD took the audio since the last commit for speech
        self._segment = bytearray()  # audio since the last commit, for the ladder
        self._outgoing = bytearray()  # audio not sent yet (sent every SEND_EVERY_SECS)
        self._segment_streamed = False  # the session was ready for the whole segment
        self._pending: list[_Segment] = []  # committed, not transcribed yet (in commit order)
        self.segments = SegmentCounter()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- audio in ----------------------------------------------------------------------------------
    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection) -> None:
        """Nothing: the audio comes with the VAD's verdict on it (``on_vad_state``)."""

    async def _add_speech(self, audio: bytes) -> None:
        self._segment += audio
        if not self._segment_streamed:
            return
        self._outgoing += audio
        if len(self._outgoing) >= int(SEND_EVERY_SECS * (self.sample_rate or 8000)) * 2:
            await self._send_outgoing()

    async def _send_outgoing(self) -> None:
        audio = bytes(self._outgoing)
        self._outgoing.clear()  # before the await: frames arriving meanwhile go in the next message
        if audio and self.ready:
            if self._phone_rate:
                encoded = pcm16_to_ulaw(audio)
            else:  # a web call (16 kHz): PCM at the API's 24 kHz
                encoded = await self._resampler.resample(audio, self.sample_rate, OPENAI_PCM_RATE)
            payload = base64.b64encode(encoded).decode("ascii")
            await self._ws_send({"type": "input_audio_buffer.append", "audio": payload})

    @property
    def _phone_rate(self) -> bool:
        return (self.sample_rate or PHONE_RATE) == PHONE_RATE

    @property
    def ready(self) -> bool:
        """The transcription session is up and configured."""
        return self.streaming and self._websocket is not None and self._session_ready

    async def on_vad_state(self, state: VADState, silent_secs: float, audio: bytes) -> None:
        """One frame of caller audio and the VAD's state after it: speech starts sending, a pause commits."""
        if state == VADState.SPEAKING:
            self._heard_speech = True
        if state in SPEECH_STATES and not self._sending:
            self._sending = True
            self._segment_streamed = self._segment_streamed or (self.ready and not self._segment)
            ring, self._ring, self._ring_bytes = b"".join(self._ring), deque(), 0
            await self._add_speech(ring)
        if self._sending:
            await self._add_speech(audio)
        else:
            self._keep_in_ring(audio)
        if self._sending and (
            state == VADState.QUIET
            or (state == VADState.STOPPING and silent_secs >= COMMIT_AFTER_SECS and self.ready)
        ):  # (the ladder gets whole utterances, cut at VAD stop, as Pipecat's segmented STT cuts them)
            self._sending = False
            if self._heard_speech:  # (a blip VAD never took for speech waits for the next words)
                self._heard_speech = False
                await self.commit()

    def _keep_in_ring(self, audio: bytes) -> None:
        self._ring.append(audio)
        self._ring_bytes += len(audio)
        limit = int(PRE_ROLL_SECS * (self.sample_rate or 8000)) * 2
        while self._ring_bytes - len(self._ring[0]) >= limit:
            self._ring_bytes -= len(self._ring.popleft())

    async def _commit_audio_buffer(self) -> None:
        """Pipecat commits at VAD stop; here the pause did already (``on_vad_state``)."""

    # -- commits ------------------------------------------------------------------------------------
    async def commit(self) -> None:
        """Commit the caller's audio since the last commit (the stream's, or the ladder's)."""
        pcm, streamed = bytes(self._segment), self._segment_streamed
        if len(pcm) < int(MIN_COMMIT_SECS * (self.sample_rate or 8000)) * 2:
            return  # a click, not a word: it stays in the segment for the next commit
        self._segment.clear()
        self._segment_streamed = False
        self.segments.committed += 1  # before any await: the turn end waits for it from now
        segment = _Segment(pcm, time.monotonic())
        if streamed and self.ready:
            await self._send_outgoing()
            self._pending.append(segment)
            await self._ws_send({"type": "input_audio_buffer.commit"})
            segment.timer = self._spawn(self._deadline(segment))
        else:
            self._spawn(self._transcribe_by_ladder(segment))

    async def _deadline(self, segment: _Segment) -> None:
        await asyncio.sleep(STREAM_DEADLINE_SECS + 0.05 * len(segment.pcm) / 16000)
        if not segment.done:
            await self._stream_failed("timeout", f"no transcript {STREAM_DEADLINE_SECS:.1f} s after a commit")

    async def _settle(self, segment: _Segment, text: str) -> None:
        if segment.done:
            return
        segment.done = True
        if segment.timer is not None and segment.timer is not asyncio.current_task():
            segment.timer.cancel()
        if segment in self._pending:
            self._pending.remove(segment)
        self.segments.sent = min(self.segments.committed, self.segments.sent + 1)
        if text.strip():
            frame = TranscriptionFrame(text, self._user_id, time_now_iso8601())
            frame.finalized = True  # the whole of its commit: the turn need not wait for more
            await self.push_frame(frame)
        await self.push_frame(SegmentSettledFrame(text=text))

    async def _transcribe_by_ladder(self, segment: _Segment) -> None:
        text = ""
        try:
            result = await self.fallback.transcribe_segment(pcm_to_wav(segment.pcm, self.sample_rate or 8000))
            text = str(getattr(result, "text", "") or "")
        except STTExhausted:
            pass  # the ladder has handed the call to the rescue
        except Exception as exc:  # a bug must not leave the turn waiting
            logger.error("STT ladder failed on a streamed segment: {}", exc)
        await self._settle(segment, text)

    async def _stream_failed(self, kind: str, detail: str) -> None:
        """The session cannot transcribe any more: its pending segments and later ones go to the ladder."""
        if self.streaming:
            self.streaming = False
            self.failure = f"{kind}: {detail}"
            logger.warning("streaming STT failed ({}): the STT ladder takes over for this call", detail)
            report_provider_error(self.health, "openai", kind, f"realtime transcription failed: {detail}")
            metrics.fallback_used("stt", "segmented")
            self._spawn(self._close_socket())
        pending, self._pending = list(self._pending), []
        for segment in pending:
            if segment.timer is not None and segment.timer is not asyncio.current_task():
                segment.timer.cancel()
            self._spawn(self._transcribe_by_ladder(segment))

    async def _close_socket(self) -> None:
        self._session_ready = False
        websocket, self._websocket = self._websocket, None
        if websocket is not None:
            try:
                await websocket.close()
            except Exception:  # already gone
                pass

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = self.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the session --------------------------------------------------------------------------------
    async def _connect(self) -> None:
        """Open the session in the background: the call (and its greeting) never waits for it."""
        self._disconnecting = False
        self._receive_task = self.create_task(self._run_session())  # type: ignore[assignment]

    async def _run_session(self) -> None:
        try:
            self._websocket = await asyncio.wait_for(
                self._websocket_connect(
                    uri=f"{self._base_url}?intent=transcription",
                    additional_headers={"Authorization": f"Bearer {self._api_key}"},
                    compression=None,  # base64 audio: deflating it costs CPU on the call's loop, saves little
                ),
                CONNECT_TIMEOUT_SECS,
            )
            await self._receive_messages()
            failure: tuple[str, str] = ("dropped", "the session was closed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            kind = f"http_{status}" if isinstance(status, int) else error_kind(exc)
            failure = (kind, f"{type(exc).__name__}: {kind}")
            if self._websocket is None and not self.refusal_is_failure:
                logger.info("no realtime transcription at {} ({}): segmented STT", self._base_url, kind)
                self.streaming, self.failure = False, f"{kind}: not offered"
                return
        if not self._disconnecting:
            await self._stream_failed(*failure)

    async def _disconnect(self) -> None:
        self._disconnecting = True
        if self._receive_task:
            await self.cancel_task(self._receive_task, timeout=1.0)
            self._receive_task = None
        for task in list(self._tasks):
            await self.cancel_task(task, timeout=1.0)
        await self._close_socket()

    async def _send_session_update(self) -> None:
        """Transcribe mu-law at 8 kHz (the phone's audio; PCM at 24 kHz for a web call), local VAD."""
        settings: OpenAIRealtimeSTTSettings = self._settings
        transcription: dict[str, Any] = {"model": settings.model}
        language = settings.language
        if isinstance(language, Language):
            transcription["language"] = self._language_to_code(language)
        audio_format = (
            {"type": "audio/pcmu"} if self._phone_rate else {"type": "audio/pcm", "rate": OPENAI_PCM_RATE}
        )
        input_audio = {
            "format": audio_format,
            "transcription": transcription,
            "turn_detection": None,
        }
        await self._ws_send(
            {"type": "session.update", "session": {"type": "transcription", "audio": {"input": input_audio}}}
        )

    async def _ws_send(self, message: dict[str, Any]) -> None:
        websocket = self._websocket
        if websocket is None or self._disconnecting:
            return
        try:
            await websocket.send(json.dumps(message))
        except Exception as exc:
            await self._stream_failed(error_kind(exc), f"send failed: {type(exc).__name__}")

    # -- server events ------------------------------------------------------------------------------
    async def _receive_messages(self) -> None:
        websocket = self._websocket
        assert websocket is not None
        async for message in websocket:
            event = json.loads(message)
            kind = event.get("type", "")
            if kind == "session.created":
                await self._send_session_update()
            elif kind == "session.updated":
                self._session_ready = True
            elif kind == "input_audio_buffer.committed":
                self._committed(str(event.get("item_id") or ""))
            elif kind == "conversation.item.input_audio_transcription.completed":
                await self._completed(str(event.get("item_id") or ""), str(event.get("transcript") or ""))
            elif kind == "conversation.item.input_audio_transcription.failed":
                await self._item_failed(str(event.get("item_id") or ""), event.get("error") or {})
            elif kind == "error":
                error = event.get("error") or {}
                raise RuntimeError(f"error event {error.get('code') or error.get('type') or ''}".strip())

    def _committed(self, item_id: str) -> None:
        for segment in self._pending:
            if segment.item_id is None:
                segment.item_id = item_id
                return

    def _segment_of(self, item_id: str) -> _Segment | None:
        return next((s for s in self._pending if s.item_id == item_id), None)

    async def _completed(self, item_id: str, transcript: str) -> None:
        segment = self._segment_of(item_id)
        if segment is not None:
            await self._settle(segment, transcript)

    async def _item_failed(self, item_id: str, error: dict[str, Any]) -> None:
        segment = self._segment_of(item_id)
        if segment is not None:  # this segment only: the session goes on
            logger.warning("streaming STT could not transcribe a segment: {}", error.get("message", ""))
            self._pending.remove(segment)
            if segment.timer is not None:
                segment.timer.cancel()
            self._spawn(self._transcribe_by_ladder(segment))
