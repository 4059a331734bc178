"""The end of a caller's turn: smart-turn decides, the reply is prepared while it is confirmed.

``CallTurnStopStrategy`` is Pipecat's ``TurnAnalyzerUserTurnStopStrategy`` (VAD stop, then
smart-turn, then the transcript) with three changes:

- **Preemptive reply.** As soon as the turn's transcript is in (and does not end with a comma, a
  dash or an ellipsis: the caller is going on), VAD has stopped and the caller has been quiet
  ``SPECULATE_AFTER_SECS``, the LLM request starts, while smart-turn and the
  confirmation below run: Pipecat's speculative inference (a provisional context; the LLM
  service's ``SpeculationGate`` holds every frame of the reply). When the turn is confirmed with the
  same text, the held reply is released and no second request is made; when the caller goes on (or
  more words are transcribed), the request is cancelled and nothing of it is spoken or stored.
- **One utterance with a short pause is one turn.** A turn ends only after ``CONFIRM_SECS`` of
  silence with the caller quiet at that moment (Silero hearing no new speech), so "Thanks, that is
  all." stays one caller turn with one reply. The wait is hidden behind the LLM's first token.
- **A sentence the STT ended is a second opinion.** When smart-turn judges the speech incomplete
  (it often does on flat or synthetic prosody: "... for next Tuesday."), Pipecat waits out its
  silence fallback (``TURN_FALLBACK_SECS`` in voice/pipeline.py) while the prepared reply sits in
  the gate. If the turn's transcript ends a sentence (``.``, ``?``, ``!``; not a comma, a dash, an
  ellipsis or no mark at all: the STT heard the voice trail on), the turn ends after
  ``SENTENCE_END_SECS`` of silence instead. A caller who pauses that long after a finished sentence
  and goes on barges in on the reply, as after the fallback.
- **Every transcript of the turn.** With the streaming STT a turn may have several commits (one per
  pause); the turn waits until each is settled (``SegmentCounter``, ``SegmentSettledFrame``), at
  most ``SEGMENT_WAIT_SECS`` of silence for one the STT still holds.

- **Smart-turn is asked only when the transcript leaves the turn open.** Its verdict can end a turn
  sooner than the rules above in one case only: the transcript ends a sentence and smart-turn says
  complete, so the turn ends after ``CONFIRM_SECS`` of silence instead of ``SENTENCE_END_SECS``; its
  "incomplete" changes nothing there (the sentence-end rule ends the turn either way). That 0.2 s
  is behind the reply, which is requested early and held until the turn ends: the reply cannot be
  ready sooner than the STT, the LLM's first token and the TTS's first audio after the caller
  stopped (0.7 s on the bench's fakes, more on the real providers). So smart-turn waits for the
  pause's transcript (at most ``TRANSCRIPT_WAIT_SECS``) and runs only when it does not end a
  sentence: no words yet, none at all, a trailing comma or no mark. It judges the audio held at
  the VAD stop, as Pipecat's would. The model was a third of the CPU of a loaded process; the
  STTs' transcripts end most turns with a sentence mark.
- **Smart-turn decides beside the call, not in its way.** Pipecat awaits the model at VAD stop
  inside the user aggregator, so a call's audio, transcripts and turn end all wait for its
  verdict; with one model thread for every call of a process, a burst of callers pausing together
  queues their verdicts behind each other (~30-80 ms of CPU each) and the last call's turn waits
  for all of them. Here the verdict is a task of its own: the call's frames go on being counted
  meanwhile, and the sentence-end rule below ends the turn without it (a verdict that comes late
  ends the turn when it comes). It is withdrawn once it can no longer change the outcome: the
  caller speaks again, or the turn ends (the sentence-end rule, the fallback). A request withdrawn
  before a model thread takes it costs no inference, so under load the model runs less.

Silence is counted from the caller's last loud window, not from Silero's first low score (its
recurrent state scores 64-128 ms of silence after a word as speech: ``pause_lead_secs`` in
voice/vad_batch.py), so "after 0.7 s of silence" is 0.7 s after the caller stopped.

Silence is counted in the caller's audio frames as the aggregator processes them (VAD has scored
each one by then), not in wall time: when smart-turn or a busy event loop holds the aggregator up,
the frames queued behind it are still looked at before a pause can end the turn. That holds for
Pipecat's safety net too (``user_turn_stop_timeout``: a turn no strategy ends, e.g. one whose
transcript came back empty, is ended after 5 s without a VAD or transcript event). Counted in wall
time, a loaded process whose aggregator ran 5 s behind the caller ended "Thanks," before it had
seen "that is all." (two turns, a request for half an utterance). Here the turn ends after
``STOP_TIMEOUT_SECS`` of caller silence as the aggregator counts it; Pipecat's wall-clock timer is
set to ``WALL_STOP_TIMEOUT_SECS``, for a pipeline that has stopped processing audio at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from phone_agent.voice.streaming_stt import SegmentCounter, SegmentSettledFrame
from phone_agent.voice.turn_pool import PooledSmartTurnAnalyzer

SPECULATE_AFTER_SECS = 0.25  # caller silence before the LLM request may start (no request at a comma)
CONFIRM_SECS = 0.5  # caller silence before a turn smart-turn judged complete is over
SENTENCE_END_SECS = 0.7  # ... judged incomplete, but whose transcript ends a sentence
SENTENCE_ENDS = (".", "?", "!")
TRAILING_MARKS = (",", ";", ":", "-", "\u2013", "\u2014", "..", "\u2026")  # the caller is going on
TRANSCRIPT_WAIT_SECS = 0.6  # longest smart-turn waits after the VAD stop for the pause's transcript
SEGMENT_WAIT_SECS = 6.0  # longest wait (caller silence) for a segment the STT has not settled yet
STOP_TIMEOUT_SECS = 5.0  # caller silence that ends a turn no verdict ended (Pipecat's timeout, in audio)
WALL_STOP_TIMEOUT_SECS = 30.0  # Pipecat's wall-clock user_turn_stop_timeout: a stalled pipeline only


def ends_sentence(text: str) -> bool:
    """The transcript ends with a sentence mark (an ellipsis trails on: it does not)."""
    return text.rstrip(" \"')").endswith(SENTENCE_ENDS) and not trails_on(text)


def trails_on(text: str) -> bool:
    """The transcript ends with a comma, a dash, a colon or an ellipsis: the caller is going on."""
    return text.rstrip(" \"')").endswith(TRAILING_MARKS)


class CallTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Smart-turn end of turn with a preemptive, cancellable reply and a short confirmation."""

    def __init__(
        self,
        *,
        vad: VADAnalyzer,
        segments: SegmentCounter | None = None,
        confirm_secs: float | None = None,
        speculate_after_secs: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._vad = vad
        self.confirm_secs = CONFIRM_SECS if confirm_secs is None else confirm_secs
        self.speculate_after_secs = (
            SPECULATE_AFTER_SECS if speculate_after_secs is None else speculate_after_secs
        )
        self.turn_text: Callable[[], str] = lambda: self._text  # the user aggregator's text (set by the call)
        self.speculations = 0  # preemptive requests started (tests, bench)
        self.sentence_ends = 0  # turns ended on a sentence end smart-turn judged incomplete (tests, bench)
        self.cancelled = 0  # ... of them cancelled
        self._speculation: UserTurnSpeculation | None = None
        self._segments = segments or SegmentCounter()  # the streaming STT's commits (none when segmented)
        self._silence: float | None = None  # seconds of caller audio since their speech ended
        self._smart_turn_task: asyncio.Task[None] | None = None  # smart-turn's verdict on the last pause
        self._transcribed = False  # a transcript came since the caller last started speaking
        self._transcript_news = asyncio.Event()  # a transcript or a settled segment came in

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, SegmentSettledFrame):
            self._segments.settle_one()
            self._transcript_news.set()
        elif isinstance(frame, EagerEndOfTurnCancelFrame):
            self._speculation = None  # withdrawn by the LLM (it wanted a tool): the turn end asks again
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            # the silence VAD waited for, from the caller's last loud window (vad_batch.py)
            self._silence = frame.stop_secs + float(getattr(self._vad, "pause_lead_secs", 0.0))
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._silence = None
            self._transcribed = False  # words to come that no transcript holds yet
            await self._withdraw()  # the caller goes on: nothing of the prepared reply is said
        elif isinstance(frame, TranscriptionFrame):
            self._transcribed = True
            self._transcript_news.set()
            if self._speculation is not None:
                await self._withdraw()  # more words: the prepared reply answers less than was said
        result = await super().process_frame(frame)
        if isinstance(frame, InputAudioRawFrame) and self._silence is not None and frame.sample_rate:
            # silence is counted in caller audio, not wall time: a busy event loop that falls behind
            # the caller still sees their next words before it could take a pause for the end
            self._silence += len(frame.audio) / (2 * frame.sample_rate * max(1, frame.num_channels))
            await self._maybe_trigger_user_turn_stopped()
        elif isinstance(frame, SegmentSettledFrame):
            await self._maybe_trigger_user_turn_stopped()
        return result

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        """Pipecat's handling of a VAD stop, with smart-turn's verdict asked for in the background."""
        self._vad_user_speaking = False
        self._stop_secs = frame.stop_secs
        self._vad_stopped = True
        self._turn_complete = False
        # Pipecat's safety net for a transcript that never says it is final, from the speech's end
        stt_deadline = frame.timestamp - frame.stop_secs + self._stt_timeout
        if self._timeout_task:
            await self.task_manager.cancel_task(self._timeout_task)
        self._timeout_task = self.task_manager.create_task(
            self._timeout_handler(max(0.0, stt_deadline - time.time())), f"{self}::_timeout_handler"
        )
        await self._withdraw_verdict()
        self._smart_turn_task = self.task_manager.create_task(
            self._smart_turn_verdict(), f"{self}::smart-turn"
        )
        await self._maybe_trigger_user_turn_stopped()

    async def _smart_turn_verdict(self) -> None:
        if isinstance(self._turn_analyzer, PooledSmartTurnAnalyzer):
            self._turn_analyzer.hold_audio()  # judged as it is at the VAD stop, if judged at all
        if await self._transcript_in() and ends_sentence(self.turn_text()):
            self._smart_turn_task = None  # the sentence-end rule ends this turn: no inference
            return
        state, prediction = await self._turn_analyzer.analyze_end_of_turn()
        self._smart_turn_task = None
        await self._handle_prediction_result(prediction)
        if state == EndOfTurnState.COMPLETE:
            self._turn_complete = True
        await self._maybe_trigger_user_turn_stopped()

    async def _transcript_in(self) -> bool:
        """Wait (at most ``TRANSCRIPT_WAIT_SECS``) until the speech before this pause is transcribed:
        a transcript came since the caller started speaking and every streaming commit is settled."""
        deadline = time.monotonic() + TRANSCRIPT_WAIT_SECS
        while not (self._transcribed and not self._segments.pending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._transcript_news.clear()
            try:
                await asyncio.wait_for(self._transcript_news.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def _withdraw_verdict(self) -> None:
        """Stop waiting for smart-turn (a request still queued for the model is then never run)."""
        task, self._smart_turn_task = self._smart_turn_task, None
        if task is not None and not task.done():
            await self.task_manager.cancel_task(task)

    async def _discard_pending_end_of_turn(self) -> None:
        await self._withdraw_verdict()  # the caller speaks again, or the turn is over
        await super()._discard_pending_end_of_turn()

    async def cleanup(self) -> None:
        await self._withdraw_verdict()
        await super().cleanup()

    async def handle_user_turn_stopped(self) -> None:
        self._speculation = None  # settled by the turn end itself
        self._segments.forget()
        self._silence = None
        await super().handle_user_turn_stopped()

    def _caller_quiet(self) -> bool:
        return self._vad._vad_state not in (VADState.STARTING, VADState.SPEAKING)

    async def _maybe_trigger_user_turn_stopped(self) -> None:
        silence = self._silence
        if not self._vad_stopped or self._vad_user_speaking or silence is None:
            return  # mid-utterance: the analyzer's silence fallback comes back here through VAD stop
        if self._segments.in_flight or (self._segments.pending and silence < SEGMENT_WAIT_SECS):
            return  # a committed segment's words are on their way (queued, or still with the STT)
        if not self._caller_quiet():
            return  # speech onset: a VAD start (withdraw) or a blip; the next frames tell
        if silence >= STOP_TIMEOUT_SECS:
            await self.trigger_user_turn_stopped()  # nothing ended it (no words came): over
            return
        text = self.turn_text().strip()
        if text and silence >= self.speculate_after_secs and not trails_on(text):
            await self._speculate(text)  # ("Thanks," in a pause Silero hears long: no request)
        if not self._turn_complete and silence >= SENTENCE_END_SECS and ends_sentence(text):
            # smart-turn doubted it (or has not said yet); the transcript ends a sentence
            self._turn_complete = True
            self.sentence_ends += 1
            await self._withdraw_verdict()  # too late to matter: a queued request is never run
            logger.debug("smart-turn has not judged the turn complete; its transcript ends a sentence")
        if self._turn_complete and silence < self.confirm_secs:
            return
        await super()._maybe_trigger_user_turn_stopped()

    async def _speculate(self, text: str) -> None:
        if self._speculation is not None and self._speculation.text == text:
            return
        await self._withdraw()
        self._speculation = UserTurnSpeculation(text=text)
        self.speculations += 1
        logger.debug("reply requested early, {:.2f} s into the caller's silence", self._silence or 0.0)
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def _withdraw(self) -> None:
        if self._speculation is not None:
            self._speculation = None
            self.cancelled += 1
            await self.trigger_user_turn_speculation_cancelled()

    async def trigger_user_turn_stopped(self, *, enable_user_speaking_frames: bool | None = None) -> None:
        """End the turn: release the prepared reply when it answers this text, else ask now."""
        speculation, self._speculation = self._speculation, None
        logger.debug(
            "caller turn over after {:.2f} s of silence (smart-turn: {})",
            self._silence or 0.0,
            "complete" if self._turn_complete else "incomplete",
        )
        if speculation is not None and speculation.text == self.turn_text().strip():
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=enable_user_speaking_frames, confirms_speculation=True
            )
            return
        if speculation is not None:
            self.cancelled += 1
            await self.trigger_user_turn_speculation_cancelled()
        await super().trigger_user_turn_stopped(enable_user_speaking_frames=enable_user_speaking_frames)
