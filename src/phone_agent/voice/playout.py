"""What the caller actually heard: Twilio ``mark``s after agent audio, and their echoes.

``PlayoutTracker`` sits just before the output transport. After every chunk of agent audio it
queues a ``mark`` named with the position (ms of agent audio sent so far in this call); Twilio
echoes a mark once everything queued before it has played on the phone. Words are placed on the
same timeline, so at a barge-in the words whose audio had started playing are what was heard.
Marks echoed after an interruption are ignored: Twilio echoes the pending ones on ``clear``
without playing them.

Placing a word: Pipecat's word ``pts`` is a clock reading (when the context's first audio reached
the TTS, or the previous word's pts if that is later) plus the word's time in the alignment, so only
pts differences *within one TTS context* are audio time. A word is placed at its context's first
audio on our timeline plus that difference, never beyond the audio sent when it arrives. A word
the TTS could not time carries the previous word's pts (ElevenLabs: a word opening a new text
message with no space before it, merged with the word before; a context's force-completed last
word): it is placed at a point its audio starts before — the next timed word's start, or the end
of the audio sent when it arrived — so it is never counted as heard before it played.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from phone_agent.voice.serializer import PlayedMarkFrame

MARK_PREFIX = "pa"
MARK_INTERVAL_MS = 200  # finest unit of "heard": one mark per this much agent audio
CONTEXT_CLOCKS_KEPT = 8  # TTS contexts whose word clock is remembered (a reply uses one or two)


@dataclass
class SpokenText:
    """A piece of agent text and where its audio starts on the call's agent-audio timeline."""

    text: str
    offset_ms: float
    spaced: bool  # the text carries its own spacing (no space to add before it)
    context_id: str | None = None
    timed: bool = True  # False: no time of its own; its audio starts before offset_ms

    def started_by(self, played_ms: float) -> bool:
        """Whether its audio had started once ``played_ms`` of agent audio had played."""
        return self.offset_ms < played_ms or (not self.timed and self.offset_ms <= played_ms)


@dataclass
class ContextClock:
    """Where one TTS context's word clock sits on the agent-audio timeline."""

    audio_start_ms: float  # sent_ms when the context's first audio went out
    first_pts: int | None = None  # pts of its first word: the clock reading at that audio
    last_pts: int | None = None


class PlayoutTracker(FrameProcessor):
    """Marks agent audio for Twilio and keeps the text of the current reply with its positions."""

    def __init__(self, *, stream_sid: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stream_sid = stream_sid
        self.sent_ms = 0.0  # agent audio sent so far
        self.played_ms = 0.0  # agent audio Twilio confirmed as played
        self.marks_sent = 0
        self.marks_played = 0
        self._reply: list[SpokenText] = []
        self._clocks: dict[str | None, ContextClock] = {}
        self._interrupted_at: float | None = None  # played_ms frozen at the last barge-in

    # -- what was heard ---------------------------------------------------------------------------
    def reply_text(self, *, heard_only: bool) -> str:
        """The current reply's text: all of it, or only what had been played at the barge-in."""
        limit = self._interrupted_at if self._interrupted_at is not None else self.played_ms
        parts = [p for p in self._reply if not heard_only or p.started_by(limit)]
        return _join(parts)

    # -- frames -----------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, PlayedMarkFrame):
            self._on_mark(frame.mark)
            return  # consumed here
        if isinstance(frame, InterruptionFrame):
            self._interrupted_at = self.played_ms
            logger.debug("barge-in: {:.0f} ms of {:.0f} ms agent audio played", self.played_ms, self.sent_ms)
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, UserStoppedSpeakingFrame):
            self._start_reply()
        if isinstance(frame, TTSStartedFrame):
            self._clocks.pop(frame.context_id, None)  # a (re)started context: its clock restarts too
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, TTSTextFrame):
            self._add_text(frame)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, TTSAudioRawFrame) and frame.audio:
            await self._send_marked_audio(frame)
            return
        await self.push_frame(frame, direction)

    async def _send_marked_audio(self, frame: TTSAudioRawFrame) -> None:
        """Forward TTS audio in pieces of at most MARK_INTERVAL_MS, each followed by a mark."""
        if frame.context_id not in self._clocks:
            self._clocks[frame.context_id] = ContextClock(audio_start_ms=self.sent_ms)
            if len(self._clocks) > CONTEXT_CLOCKS_KEPT:
                del self._clocks[next(iter(self._clocks))]
        bytes_per_ms = 2 * frame.sample_rate * frame.num_channels / 1000
        step = max(2, int(MARK_INTERVAL_MS * bytes_per_ms) // 2 * 2)
        if len(frame.audio) <= step:
            pieces: list[TTSAudioRawFrame] = [frame]
        else:
            pieces = []
            for start in range(0, len(frame.audio), step):
                piece = TTSAudioRawFrame(
                    frame.audio[start : start + step],
                    frame.sample_rate,
                    frame.num_channels,
                    context_id=frame.context_id,
                )
                piece.interruptible = frame.interruptible
                pieces.append(piece)
        for piece in pieces:
            await self.push_frame(piece)
            self.sent_ms += len(piece.audio) / bytes_per_ms
            await self._send_mark()

    def _start_reply(self) -> None:
        self._reply = []
        self._interrupted_at = None

    def _add_text(self, frame: TTSTextFrame) -> None:
        if not frame.text:
            return
        # untimed: sentence-level text follows its audio; a word without a time of its own
        # follows the audio it came with
        part = SpokenText(
            frame.text, self.sent_ms, frame.includes_inter_frame_spaces, frame.context_id, timed=False
        )
        clock = self._clocks.get(frame.context_id)
        if frame.pts and clock is not None and len(frame.text.split()) == 1:
            if clock.first_pts is None:
                clock.first_pts = frame.pts
            if clock.last_pts is None or frame.pts > clock.last_pts:
                clock.last_pts = frame.pts
                start = clock.audio_start_ms + (frame.pts - clock.first_pts) / 1e6
                # beyond the audio sent, the clock is off: the word's audio starts before sent_ms
                part.offset_ms, part.timed = min(self.sent_ms, start), start < self.sent_ms
                for earlier in reversed(self._reply):  # untimed words just before start before it
                    if earlier.timed or earlier.context_id != part.context_id:
                        break
                    earlier.offset_ms = min(earlier.offset_ms, part.offset_ms)
        self._reply.append(part)

    async def _send_mark(self) -> None:
        self.marks_sent += 1
        name = f"{MARK_PREFIX}:{self.marks_sent}:{self.sent_ms:.0f}"
        message = {"event": "mark", "streamSid": self._stream_sid, "mark": {"name": name}}
        await self.push_frame(OutputTransportMessageFrame(message=message))

    def _on_mark(self, name: str) -> None:
        parts = name.split(":")
        if len(parts) != 3 or parts[0] != MARK_PREFIX:
            logger.debug("ignoring a mark we did not send: {!r}", name[:40])
            return
        try:
            position = float(parts[2])
        except ValueError:
            return
        self.marks_played += 1
        self.played_ms = max(self.played_ms, position)


def _join(parts: list[SpokenText]) -> str:
    text = ""
    for part in parts:
        if text and not part.spaced and not text.endswith(" ") and not part.text.startswith(" "):
            text += " "
        text += part.text
    return text.strip()
