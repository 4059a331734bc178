"""What the caller actually heard: Twilio ``mark``s after agent audio, and their echoes.

``PlayoutTracker`` sits just before the output transport. After every chunk of agent audio it
queues a ``mark`` named with the position (ms of agent audio sent so far in this call); Twilio
echoes a mark once everything queued before it has played on the phone. Words are placed on the
same timeline, so at a barge-in the words whose audio was played are what was heard.
Marks echoed after an interruption are ignored: Twilio echoes the pending ones on ``clear``
without playing them.

Placing a word: Pipecat's word ``pts`` is a clock reading (when the context's first audio reached
the TTS, or the previous word's pts if that is later) plus the word's time in the alignment, so only
pts differences *within one TTS context* are audio time. A word is placed at its context's first
audio on our timeline plus that difference, never beyond the audio sent when it arrives. A word
the TTS could not time carries the previous word's pts. When a timed word of its context follows,
it is one that opened a new text message with no space before it (ElevenLabs merged it into the
word before): its audio starts with the last audio chunk before it. Otherwise (a context's
force-completed last word) it is placed at the end of the audio sent when it arrived. Either way
no word is placed before its audio.

Late frames of an interrupted reply: at a barge-in every (interruptible) TTS context seen so far is
closed. Its text or audio arriving afterwards (Pipecat force-completes a context's untimed words,
the output transport releases words whose time had come while the ``InterruptionFrame`` went by)
was never heard and is no part of the next reply: the tracker drops what reaches it, and
``InterruptedContextFilter`` (after the output transport) drops the words the assistant
aggregator would otherwise add to the next reply in the conversation and the call record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from phone_agent.voice.frame_tap import TapObserver

MARK_PREFIX = "pa"
QUIET_AFTER_SPEECH_SECS = 0.3  # no new agent audio for this long = the agent has finished
SPEECH_END_TIMEOUT_SECS = 30.0
MARK_INTERVAL_MS = 200  # finest unit of "heard": one mark per this much agent audio
CONTEXT_CLOCKS_KEPT = 8  # TTS contexts whose word clock is remembered (a reply uses one or two)
INTERRUPTED_CONTEXTS_KEPT = 32  # interrupted TTS contexts whose late frames are still dropped


@dataclass
class ContextClock:
    """Where one TTS context's word clock sits on the agent-audio timeline."""

    audio_start_ms: float  # sent_ms when the context's first audio went out
    chunk_ms: float  # sent_ms when its latest audio chunk went out
    first_pts: int | None = None  # pts of its first word: the clock reading at that audio
    last_pts: int | None = None


@dataclass
class SpokenText:
    """A piece of agent text and where its audio starts on the call's agent-audio timeline."""

    text: str
    offset_ms: float
    spaced: bool  # the text carries its own spacing (no space to add before it)
    clock: ContextClock | None = field(default=None, repr=False, compare=False)
    timed: bool = True  # False: no time of its own; its audio starts before offset_ms
    chunk_ms: float = 0.0  # untimed: where the last audio chunk of its context before it started


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
        self._reply_audio_end = 0.0
        self._clocks: dict[str | None, ContextClock] = {}
        self._interrupted_at: float | None = None  # played_ms frozen at the last barge-in
        self._open_contexts: dict[str, None] = {}  # interruptible TTS contexts since the last barge-in
        self._interrupted_contexts: dict[str, None] = {}  # closed by a barge-in (oldest first)

    def interrupted_contexts(self) -> frozenset[str]:
        """The TTS contexts a barge-in cut off: none of their text belongs to a later reply."""
        return frozenset(self._interrupted_contexts)

    # -- what was heard ---------------------------------------------------------------------------
    def reply_text(self, *, heard_only: bool) -> str:
        """The current reply's text: all of it, or only the words played in full before the barge-in.

        A word counts as heard once the next word's audio has started playing (the last word: once
        the reply's audio has all played), so a word cut off in the middle is not kept.
        """
        if not heard_only:
            return _join(self._reply)
        limit = self._interrupted_at if self._interrupted_at is not None else self.played_ms
        ends = [part.offset_ms for part in self._reply[1:]] + [self._reply_audio_end]
        return _join([part for part, end in zip(self._reply, ends, strict=True) if end <= limit])

    async def wait_until_played(self, *, since_ms: float, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until agent audio sent after ``since_ms`` has all been played by the phone."""
        deadline = time.monotonic() + timeout
        last_sent, steady_since = self.sent_ms, time.monotonic()
        while time.monotonic() < deadline:
            if self.sent_ms != last_sent:
                last_sent, steady_since = self.sent_ms, time.monotonic()
            done = self.sent_ms > since_ms and self.played_ms >= self.sent_ms - 1
            if done and time.monotonic() - steady_since >= QUIET_AFTER_SPEECH_SECS:
                return True
            await asyncio.sleep(0.05)
        logger.warning("gave up waiting for the phone to play the last words")
        return False

    # -- frames -----------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.UPSTREAM and isinstance(frame, BotSpeakingFrame):
            return  # the output transport's 5 a second while talking: nothing before it reads them
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, _CONTEXT_FRAMES) and frame.context_id:
            if frame.context_id in self._interrupted_contexts:
                logger.debug("dropping a late {} of an interrupted reply", type(frame).__name__)
                return
            if frame.interruptible and frame.context_id not in self._open_contexts:
                self._open_contexts[frame.context_id] = None
                if len(self._open_contexts) > INTERRUPTED_CONTEXTS_KEPT:
                    del self._open_contexts[next(iter(self._open_contexts))]
        if isinstance(frame, InterruptionFrame):
            self._close_contexts()
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
        clock = self._clocks.get(frame.context_id)
        if clock is None:
            clock = self._clocks[frame.context_id] = ContextClock(self.sent_ms, self.sent_ms)
            if len(self._clocks) > CONTEXT_CLOCKS_KEPT:
                del self._clocks[next(iter(self._clocks))]
        clock.chunk_ms = self.sent_ms
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
            self._reply_audio_end = self.sent_ms
            await self._send_mark()

    def _close_contexts(self) -> None:
        self._interrupted_contexts.update(self._open_contexts)
        self._open_contexts = {}
        while len(self._interrupted_contexts) > INTERRUPTED_CONTEXTS_KEPT:
            del self._interrupted_contexts[next(iter(self._interrupted_contexts))]

    def _start_reply(self) -> None:
        self._reply = []
        self._reply_audio_end = self.sent_ms
        self._interrupted_at = None

    def _add_text(self, frame: TTSTextFrame) -> None:
        if not frame.text:
            return
        clock = self._clocks.get(frame.context_id)
        # untimed: sentence-level text follows its audio, so does a word without a time of its own
        part = SpokenText(frame.text, self.sent_ms, frame.includes_inter_frame_spaces, clock, timed=False)
        part.chunk_ms = clock.chunk_ms if clock else self.sent_ms
        if frame.pts and clock is not None and len(frame.text.split()) == 1:
            if clock.first_pts is None:
                clock.first_pts = frame.pts
            if clock.last_pts is None or frame.pts > clock.last_pts:
                clock.last_pts = frame.pts
                start = clock.audio_start_ms + (frame.pts - clock.first_pts) / 1e6
                part.offset_ms, part.timed = min(self.sent_ms, start), True  # never beyond its audio
                for earlier in reversed(self._reply):  # untimed words that opened a text message
                    if earlier.timed or earlier.clock is not clock:
                        break
                    earlier.offset_ms = min(earlier.offset_ms, earlier.chunk_ms, part.offset_ms)
        self._reply.append(part)

    async def _send_mark(self) -> None:
        self.marks_sent += 1
        name = f"{MARK_PREFIX}:{self.marks_sent}:{self.sent_ms:.0f}"
        message = {"event": "mark", "streamSid": self._stream_sid, "mark": {"name": name}}
        await self.push_frame(OutputTransportMessageFrame(message=message))

    def on_mark(self, name: str) -> None:
        """Twilio played every byte queued before the mark ``name`` (told by the serializer)."""
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


class InterruptedContextFilter(FrameProcessor):
    """After the output transport: drops words of interrupted replies it releases after a barge-in.

    The output transport passes the ``InterruptionFrame`` on before it empties its queue of timed
    words, so words of the cut-off reply can follow it to the assistant aggregator, which would add
    them to the next reply (conversation history and ``call_turns``). Contexts are known closed
    from the ``PlayoutTracker``, which sees every TTS frame before the output transport does.
    """

    def __init__(self, *, tracker: PlayoutTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracker = tracker
        self._closed: frozenset[str] = frozenset()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._closed = self._tracker.interrupted_contexts()
        elif (
            direction == FrameDirection.DOWNSTREAM
            and isinstance(frame, TTSTextFrame)
            and frame.context_id in self._closed
        ):
            logger.debug("dropping a late word of an interrupted reply: {!r}", frame.text)
            return
        await self.push_frame(frame, direction)


class SpeechEndWatcher(TapObserver):
    """Calls ``on_played`` each time the agent stops talking and the phone has played it all
    (the brain's ``end_call``/``transfer_call`` wait for this before acting)."""

    watched = (BotStoppedSpeakingFrame,)

    def __init__(self, tracker: PlayoutTracker, on_played: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._tracker, self._on_played = tracker, on_played
        self._waiting: asyncio.Task[None] | None = None

    async def on_push_frame(self, data: FramePushed) -> None:
        if isinstance(data.frame, BotStoppedSpeakingFrame) and (
            self._waiting is None or self._waiting.done()
        ):
            # the tracker's Pipecat task manager owns the wait: it ends with the call's pipeline
            self._waiting = self._tracker.create_task(self._when_played(), name="speech-end")

    async def _when_played(self) -> None:
        if await self._tracker.wait_until_played(since_ms=-1, timeout=SPEECH_END_TIMEOUT_SECS):
            await self._on_played()


_CONTEXT_FRAMES = (TTSStartedFrame, TTSAudioRawFrame, TTSTextFrame)  # a TTS context's content


def _join(parts: list[SpokenText]) -> str:
    text = ""
    for part in parts:
        if text and not part.spaced and not text.endswith(" ") and not part.text.startswith(" "):
            text += " "
        text += part.text
    return " ".join(text.split())  # pieces fed to TTS end in a space: never a double one in a turn
