"""``CallRecorder``: timing marks of every turn, and each turn written to ``call_turns``.

A tap of the call's ``FrameTap`` (it sees each frame of the types it watches once, when the
processor that made it pushes it first, without sitting in the pipeline) notes, in ms since the
stream started: ``caller_stopped`` (end of caller speech: VAD stop minus its stop delay),
``turn_detected`` (end of turn decided), ``stt_final`` (final transcript), ``llm_first_token``,
``tts_first_audio`` (first audio out of the TTS) and ``first_audio_sent`` (first agent audio
written to the websocket: the output transport's own chunks). Turns are written by one background
task, in order, so the call path never waits for the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameProcessor
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.ops import metrics
from phone_agent.storage.calls import add_turn
from phone_agent.tasks import TaskOwner
from phone_agent.voice.frame_tap import TapObserver

CALLER_MARKS = ("caller_stopped", "turn_detected", "stt_final")
AGENT_MARKS = ("llm_first_token", "tts_first_audio", "first_audio_sent")


@dataclass
class TurnRecord:
    """One turn as written to ``call_turns``."""

    role: str
    text: str
    marks: dict[str, float]
    planned_text: str | None = None
    interrupted: bool = False
    tool_calls: list[Any] | None = None


@dataclass
class _Exchange:
    marks: dict[str, float] = field(default_factory=dict)
    planned: list[str] = field(default_factory=list)


class CallRecorder(TapObserver):
    """Collects timing marks from the frames of one call and stores its turns."""

    watched = (
        VADUserStoppedSpeakingFrame,
        UserStoppedSpeakingFrame,
        TranscriptionFrame,
        LLMFullResponseStartFrame,
        TTSSpeakFrame,
        LLMTextFrame,
        OutputAudioRawFrame,  # TTSAudioRawFrame is one
    )

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        call_id: int,
        started_at: float,
        vad_stop_secs: float,
        llm: FrameProcessor,
        tts: list[FrameProcessor],
        output: FrameProcessor,
        tasks: TaskOwner | None = None,
        pause_lead: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__()  # each frame once, where it was made
        self._tasks = tasks  # owns the writer (it must outlive the pipeline until ``flush``)
        self._sessions, self._call_id = sessions, call_id
        self._started_at, self._vad_stop_secs = started_at, vad_stop_secs
        self._pause_lead = pause_lead  # the pause before Silero scored it as one (voice/vad_batch.py)
        self._llm, self._tts, self._output = llm, tts, output
        self._exchange = _Exchange()
        self._awaiting_audio = False
        self.turns: list[TurnRecord] = []
        self._queue: asyncio.Queue[TurnRecord | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def _now_ms(self) -> float:
        return round(1000 * (time.monotonic() - self._started_at), 1)

    def _mark(self, name: str, value: float | None = None) -> None:
        self._exchange.marks.setdefault(name, self._now_ms() if value is None else value)

    # -- observing frames -------------------------------------------------------------------------
    async def on_push_frame(self, data: FramePushed) -> None:
        frame, source = data.frame, data.source
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            silence = self._vad_stop_secs + self._pause_lead()
            self._exchange.marks["caller_stopped"] = round(self._now_ms() - 1000 * silence, 1)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._mark("turn_detected")
        elif isinstance(frame, TranscriptionFrame):
            self._exchange.marks["stt_final"] = self._now_ms()
        elif isinstance(frame, LLMFullResponseStartFrame):
            if source is self._llm:
                self._exchange.planned = []
                self._awaiting_audio = True
        elif isinstance(frame, TTSSpeakFrame):
            self._awaiting_audio = True
        elif isinstance(frame, LLMTextFrame):
            if source is self._llm:
                self._mark("llm_first_token")
                self._exchange.planned.append(frame.text)
        elif isinstance(frame, TTSAudioRawFrame) and source in self._tts and self._awaiting_audio:
            self._mark("tts_first_audio")
        # audio of the previous reply may still be going out: only this reply's first audio counts
        if (
            isinstance(frame, OutputAudioRawFrame)
            and source is self._output
            and self._awaiting_audio
            and "tts_first_audio" in self._exchange.marks
        ):
            self._mark("first_audio_sent")
            self._awaiting_audio = False

    # -- turns ------------------------------------------------------------------------------------
    def caller_turn(self, text: str) -> None:
        """The caller finished a turn saying ``text``."""
        marks = {k: v for k, v in self._exchange.marks.items() if k in CALLER_MARKS}
        self._store(TurnRecord("caller", text, marks))

    def agent_turn(
        self,
        text: str,
        *,
        planned: str | None = None,
        interrupted: bool = False,
        tool_calls: list[Any] | None = None,
    ) -> None:
        """The agent finished (or was cut off in) a turn; ``text`` is what the caller heard.

        ``planned``: what the agent meant to say, when no LLM reply (e.g. a spoken prompt) tells it.
        """
        marks = dict(self._exchange.marks)
        metrics.observe_turn(marks)
        planned_text = "".join(self._exchange.planned) or planned or None
        text = " ".join(text.split())  # TTS pieces end in a space and Pipecat joins them with one more
        self._store(TurnRecord("agent", text, marks, planned_text, interrupted, tool_calls or None))
        self._exchange = _Exchange()

    def _store(self, record: TurnRecord) -> None:
        self.turns.append(record)
        logger.info(
            "{} turn{}: {!r} marks={}",
            record.role,
            " (interrupted)" if record.interrupted else "",
            record.text[:80],
            record.marks,
        )
        if self._writer is None:
            writer = self._write_turns()
            name = f"turn-writer-{self._call_id}"
            self._writer = (
                self._tasks.spawn(writer, name=name)
                if self._tasks is not None
                else asyncio.get_running_loop().create_task(writer, name=name)
            )
            if self._writer is None:  # the process is shutting down: nothing more is stored
                return
        self._queue.put_nowait(record)

    async def _write_turns(self) -> None:
        while (record := await self._queue.get()) is not None:
            try:
                await add_turn(
                    self._sessions,
                    call_id=self._call_id,
                    role=record.role,
                    text=record.text,
                    marks=record.marks,
                    planned_text=record.planned_text,
                    interrupted=record.interrupted,
                    tool_calls=record.tool_calls,
                )
            except Exception as exc:  # a lost row must not end the call
                logger.error("could not store a {} turn: {}", record.role, exc)

    async def flush(self) -> None:
        """Wait until every turn is stored (at the end of the call)."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None

    def as_rows(self) -> list[dict[str, Any]]:
        """The turns recorded so far (for logs and tests)."""
        return [r.__dict__ for r in self.turns]
