"""Silero VAD for every call of a process: one ONNX inference per tick for all calls, off the loop.

Pipecat runs Silero once per call per 32 ms window (a batch of one: ~160 us here, most of it
fixed cost). The model takes a batch dimension with a recurrent state per row, so here each
call's analyzer hands the window it has just completed to the process's ``SileroBatcher``; the
batcher's worker thread wakes at most once per tick, stacks the windows of every call that has
one (input ``(B, 32 + 256)``, state ``(2, B, 128)`` at 8 kHz, the phone's own rate: nothing is
resampled), runs the model once (~40 us a row at B=50; onnxruntime releases the GIL) and gives
every row back to its call. The call's VAD state machine then runs on the event loop, as
Pipecat's own code: ``SileroVADAnalyzer._run_analyzer`` (volume gate, start/stop counts,
periodic model reset), whose model call returns the row the batch computed. The worker thread
does nothing else (stacking the rows, the run, handing them back): Python there holds the GIL
the event loop needs, and each hand-over of the GIL between the two costs more than the work.
A frame that completes more than one window (a 40 ms frame does every fourth time, a 100 ms frame
always) hands Pipecat's analysis one window at a time, each gated and scored in a batch first; so
the model's state, its reset check and the state machine see the windows in Pipecat's order, and a
call's decisions are those of Pipecat's analyzer on the same audio; only when they are made moves,
by at most a tick per window. (Scored alone on the loop, those second windows were a fifth of all
windows at 40 ms frames, none of them gated: ~10 % of the loop's time at 40 calls.)

The tick is 10 ms, not a whole window (32 ms): a call's frames wait for their window's score (the
VAD's caller, Pipecat's user aggregator, handles one frame at a time), so with a 32 ms tick a call
gets at most one window per window of audio and never catches up once it is behind (a busy loop,
a burst of frames); at 10 ms it catches up at three times real time and waits 5 ms on average.
At 50 calls that is ~16 rows a run instead of 50: ~7 % of a core for Silero instead of ~6.5 %
(and ~25 % unbatched).

Windows too quiet to be speech are not scored at all: Pipecat's state machine calls a window
speech only when its confidence *and* its smoothed volume pass (``min_volume``), so below the
volume the model's answer changes nothing there. Such a window counts as a window scored 0 (the
caller's silence between sentences, while the agent talks: most of a call) and never reaches the
batcher: no row, no hand-over to its thread and back. The model's recurrent state then skips the
quiet; Pipecat's periodic reset (a quiet caller, 2 s of windows since the last one) still fires on
them, so after a long quiet the model starts afresh, as Pipecat's does. The model's first speech
windows after a quiet are thus judged from a slightly different state: on espeak speech, the
same speech segments start at most 0.16 s earlier or 0.04 s later and stop at most 0.04 s later
(tests/voice/test_vad_batch.py); ``volume_gate=False`` scores every window, exactly as Pipecat.

**When the pause began.** Silero's recurrent state keeps a word's confidence above the threshold
for two to four windows (64-128 ms) of what is already silence: on the bench's speech its score is
0.9-1.0 in windows of digital silence right after the last word. Pipecat counts the pause from the
first window it scores low, so every decision taken "after so much silence" (the streaming STT's
commit, the end of turn) comes that much later than the caller's pause. Here the windows Silero
still called speech that were already quiet (``QUIET_RATIO`` below the loudest window of the
speech, at most ``MAX_LEAD_WINDOWS``) count as the pause's lead once Silero says the speech
stopped: ``silent_secs`` and ``pause_lead_secs`` include them. Silero still decides whether there
is a pause at all; the energy only dates its start. A caller in a noise within ``QUIET_RATIO`` of
their voice gets no lead (the pause is counted as Pipecat counts it).

Per-call state is Silero's state and context (~1 KB) plus Pipecat's counters, dropped with the
analyzer when its call ends; the batcher keeps nothing of a call between ticks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from phone_agent.voice.model_threads import Answer, answer

TICK_SECS = 0.010  # a third of a Silero window (256 samples at 8 kHz, 512 at 16 kHz)
CLOSE_TIMEOUT_SECS = 5.0
QUIET_SCORE = np.zeros((1, 1), dtype=np.float32)  # a window's speech probability when it is not scored
QUIET_RATIO = 0.05  # a window this far below the speech's loudest (-26 dB in RMS) holds no words
MAX_LEAD_WINDOWS = 4  # the most of a pause Silero's hangover is taken to hide (128 ms)
SPEECH_STATES = (VADState.STARTING, VADState.SPEAKING)


class CallSileroModel(SileroOnnxModel):
    """One call's Silero state on the process's shared ONNX session.

    Called as Pipecat calls its model, it returns the row the batcher computed for this window
    when there is one, and otherwise runs a batch of one itself.
    """

    def __init__(self, session: Any) -> None:  # the shared session: nothing is loaded here
        self.session = session
        self.sample_rates = [8000, 16000]
        self._primed: np.ndarray | None = None
        self.reset_states()

    def __call__(self, x: Any, sr: int) -> np.ndarray:
        primed, self._primed = self._primed, None
        if primed is not None:
            return primed
        return super().__call__(x, sr)

    def batch_row(self, window: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """This call's model input ``(1, context + window)`` and state ``(2, 1, 128)`` for ``window``."""
        context_size = 64 if sr == 16000 else 32
        if not self._last_batch_size or (self._last_sr and self._last_sr != sr) or self._last_batch_size != 1:
            self.reset_states(1)
        if not np.shape(self._context)[1]:
            self._context = np.zeros((1, context_size), dtype="float32")
        return np.concatenate((self._context, window[np.newaxis, :]), axis=1), self._state

    def skip(self) -> None:
        """Score the next window as silence without running the model (it is below the volume gate)."""
        self._primed = QUIET_SCORE

    def take_batch_result(self, x: np.ndarray, out: np.ndarray, state: np.ndarray, sr: int) -> None:
        """Keep this row's results; the next ``__call__`` returns ``out``."""
        self._state = state
        self._context = x[..., -(64 if sr == 16000 else 32) :]
        self._last_sr, self._last_batch_size = sr, 1
        self._primed = out


@dataclass(eq=False)
class _Request:
    model: CallSileroModel
    window: np.ndarray  # the window the call's audio has just completed, as float32
    sample_rate: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]  # done once the window is scored (or could not be)


class SileroBatcher:
    """Scores the pending Silero windows of all calls in one inference per tick, in one thread."""

    def __init__(self, session: Any, *, tick_secs: float = TICK_SECS) -> None:
        self.session = session
        self.tick_secs = tick_secs
        self.inferences = 0  # batched model runs
        self.rows = 0  # windows scored by them
        self.on_inference: Callable[[int], None] | None = None  # batch size of each run (tests)
        self._pending: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="silero-batcher", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    async def score(self, model: CallSileroModel, window: bytes, sample_rate: int) -> None:
        """Score ``window`` with the next batch: ``model``'s next call then returns its row."""
        loop = asyncio.get_running_loop()
        samples = np.frombuffer(window, np.int16).astype(np.float32) / 32768.0  # as Pipecat scales it
        request = _Request(model, samples, sample_rate, loop, loop.create_future())
        with self._wake:
            if self._closed:  # shutting down: the call scores the window itself
                return
            self._pending.append(request)
            if len(self._pending) == 1:  # the worker waits for a first window, not for each one
                self._wake.notify()
        await request.future

    def close(self) -> None:
        """Stop the worker thread; calls still waiting then score their windows themselves."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(CLOSE_TIMEOUT_SECS)

    # -- the worker thread --------------------------------------------------------------------------
    def _run(self) -> None:
        next_tick = 0.0
        while self._next_batch(next_tick):
            next_tick = time.monotonic() + self.tick_secs
            self._tick(self._take())
        self._release(self._take())  # what was waiting is scored by each call

    def _next_batch(self, not_before: float) -> bool:
        """Wait for a window, then until the tick is due (windows arriving meanwhile join in)."""
        with self._wake:
            while not self._closed:
                delay = not_before - time.monotonic()
                if self._pending and delay <= 0:
                    return True
                self._wake.wait(delay if self._pending else None)
            return False

    def _take(self) -> list[_Request]:
        with self._wake:
            batch, self._pending = self._pending, []
        return batch

    def _tick(self, batch: list[_Request]) -> None:
        for rate in {r.sample_rate for r in batch}:
            self._infer([r for r in batch if r.sample_rate == rate], rate)
        self._release(batch)

    @staticmethod
    def _release(batch: list[_Request]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Answer[None]]] = {}
        for request in batch:
            by_loop.setdefault(request.loop, []).append((request.future, None))
        for loop, answers in by_loop.items():
            answer(loop, answers)

    def _infer(self, batch: list[_Request], sr: int) -> None:
        rows = [r.model.batch_row(r.window, sr) for r in batch]
        x = np.concatenate([row for row, _ in rows], axis=0)
        state = np.concatenate([s for _, s in rows], axis=1)
        try:
            out, new_state = self.session.run(
                None, {"input": x, "state": state, "sr": np.array(sr, dtype="int64")}
            )
        except Exception as exc:  # each call then scores its window on its own (and logs any error)
            logger.error("batched Silero inference failed ({} rows): {}", len(batch), exc)
            return
        self.inferences += 1
        self.rows += len(batch)
        for i, request in enumerate(batch):
            request.model.take_batch_result(x[i : i + 1], out[i : i + 1], new_state[:, i : i + 1], sr)
        if self.on_inference is not None:
            self.on_inference(len(batch))


class BatchedSileroVADAnalyzer(SileroVADAnalyzer):
    """Pipecat's ``SileroVADAnalyzer`` for one call, scored by the process's ``SileroBatcher``."""

    def __init__(
        self,
        *,
        batcher: SileroBatcher,
        sample_rate: int | None = None,
        params: VADParams | None = None,
        volume_gate: bool = True,
    ) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)  # no model of its own
        self._batcher = batcher
        self.call_model = CallSileroModel(batcher.session)
        self._model = self.call_model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self.volume_gate = volume_gate  # windows below ``min_volume`` are not scored (module docstring)
        self._window_volume: float | None = None  # the gate's volume of the window it has just let pass
        self._speech_peak = 0.0  # RMS of the loudest window since the caller started speaking
        self._quiet_run = 0  # windows Silero still calls speech that are quiet, up to the last one
        self._pause_lead = 0  # ... of them before the pause Silero has found (module docstring)
        self.skipped = 0  # windows below the volume gate: not scored (tests, bench)
        # given every frame with the state after it (the streaming STT: speech is sent, a pause commits)
        self.listeners: list[Callable[[VADState, float, bytes], Awaitable[None]]] = []

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """The VAD state after ``buffer``: at once while it completes no window, else after the tick
        (a tick per window it completes: a 40 ms frame completes two windows every fourth frame)."""
        needed = self._vad_frames_num_bytes
        state, rest = self._vad_state, buffer
        while len(self._vad_buffer) + len(rest) >= needed:
            missing = needed - len(self._vad_buffer)
            piece, rest = rest[:missing], rest[missing:]
            window = self._vad_buffer + piece
            scored = not (self.volume_gate and self._below_volume_gate(window))
            if scored:
                await self._batcher.score(self.call_model, window, self.sample_rate)
            else:
                self.call_model.skip()
                self.skipped += 1
            before, quiet = self._vad_state, self._quiet_window(window, scored)
            state = self._run_analyzer(piece)  # Pipecat's analysis of exactly this (scored) window
            self._date_pause(before, state, quiet)
        self._vad_buffer += rest
        for listener in self.listeners:
            await listener(state, self.silent_secs, buffer)
        return state

    def _below_volume_gate(self, window: bytes) -> bool:
        """Whether ``window`` is too quiet to be speech whatever the model says (Pipecat's volume test)."""
        self._window_volume = super()._get_smoothed_volume(window)
        return self._window_volume < self.params.min_volume

    def _get_smoothed_volume(self, audio: bytes) -> float:
        # the analysis of a window the gate has measured takes its volume (the tracker holds it already)
        volume, self._window_volume = self._window_volume, None
        return super()._get_smoothed_volume(audio) if volume is None else volume

    def _quiet_window(self, window: bytes, scored: bool) -> bool:
        """Whether ``window`` is quiet next to the speech so far (it raises the speech's peak if not)."""
        if self._vad_state == VADState.QUIET:
            self._speech_peak = 0.0  # speech may start here: its loudness is measured afresh
            if not scored:
                return True  # below the volume gate: no speech starts here, nothing to measure
        samples = np.frombuffer(window, np.int16).astype(np.float32)
        rms = float(np.sqrt(samples.dot(samples) / len(samples)))
        quiet = rms < QUIET_RATIO * self._speech_peak
        self._speech_peak = max(self._speech_peak, rms)
        return quiet

    def _date_pause(self, before: VADState, after: VADState, quiet: bool) -> None:
        """Follow the quiet windows Silero still calls speech; when it finds the pause, they lead it."""
        if after in SPEECH_STATES:
            self._pause_lead = 0
            self._quiet_run = self._quiet_run + 1 if quiet else 0
        elif after == VADState.STOPPING and before == VADState.SPEAKING:
            self._pause_lead, self._quiet_run = min(self._quiet_run, MAX_LEAD_WINDOWS), 0

    @property
    def pause_lead_secs(self) -> float:
        """Seconds of the caller's pause before Silero scored it as one (kept until speech starts again)."""
        return self._pause_lead * self._vad_frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def silent_secs(self) -> float:
        """Seconds of silence since the caller's last speech window, while VAD waits to call it a stop
        (from the caller's last loud window, not from Silero's first low score)."""
        if self._vad_state != VADState.STOPPING or not self.sample_rate:
            return 0.0
        return (self._vad_stopping_count + self._pause_lead) * self._vad_frames / self.sample_rate
