"""Smart-turn for every call of a process: a bounded pool of model threads, batching on demand.

Pipecat gives each call's smart-turn analyzer a thread of its own and runs the model there. Here
all calls share one ``SmartTurnPool``: at most ``threads`` inferences run at once (never more
threads than the cores the process may use, so the event loop keeps its share of them), and a
free thread takes up to ``max_batch`` of the calls waiting, prepares each one's features and
runs the model once for all of them. The decision is Pipecat's: the same audio segment (from
speech start minus the pre-speech margin to the stop, at most 8 s), the same features, complete
when the probability exceeds 0.5.

``max_batch`` is 1 by default because batching does not pay on the CPUs measured here (AMD EPYC,
AVX2 without VNNI): the int8 model costs ~77 ms of CPU a row at a batch of 1, 82 at 2 and 89 at 4
(no fixed cost to share), the first call of a batch waits for all of them (165 ms for two, 355
for four) and onnxruntime keeps the larger buffers for good (+21 MB at 2, +60 MB at 4). Where
int8 matrix products are cheap (VNNI, AMX) a larger ``max_batch`` may be worth measuring.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn._whisper_features import compute_whisper_log_mel_features
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.metrics.metrics import MetricsData, TurnMetricsData

from phone_agent.voice.model_threads import answer

MAX_THREADS = 2
MAX_BATCH = 1  # see the module docstring
MODEL_SAMPLE_RATE = 16000
MODEL_SECONDS = 8
CLOSE_TIMEOUT_SECS = 10.0

Prediction = tuple[EndOfTurnState, MetricsData | None]


def pool_threads(limit: int = MAX_THREADS) -> int:
    """Model threads for this process: ``limit``, but no more than the cores it may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(limit, cores))


@dataclass(eq=False)
class _Request:
    analyzer: PooledSmartTurnAnalyzer
    audio: list[tuple[float, np.ndarray]]  # the call's buffer when its speech stopped
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Prediction]


class SmartTurnPool:
    """Runs the end-of-turn model for all calls: ``threads`` workers, up to ``max_batch`` per run."""

    def __init__(self, session: Any, *, threads: int = 1, max_batch: int = MAX_BATCH) -> None:
        self.session = session
        self.max_batch = max(1, max_batch)
        self.batches: list[int] = []  # size of every model run (figures and tests)
        self.withdrawn = 0  # requests dropped unrun: nobody waited for them any more
        self._pending: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"smart-turn-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> int:
        return len(self._threads)

    async def predict(
        self, analyzer: PooledSmartTurnAnalyzer, audio: list[tuple[float, np.ndarray]]
    ) -> Prediction:
        """The end-of-turn decision for ``analyzer``'s speech in ``audio``."""
        loop = asyncio.get_running_loop()
        request = _Request(analyzer, audio, loop, loop.create_future())
        with self._wake:
            closed = self._closed
            if not closed:
                self._pending.append(request)
                self._wake.notify()
        if closed:  # the process is shutting down: decide this one on a thread of its own
            [result] = await asyncio.to_thread(self._predict, [request])
            if isinstance(result, Exception):
                raise result
            return result
        return await request.future

    def close(self) -> None:
        """Answer what is queued, then stop the threads."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(CLOSE_TIMEOUT_SECS)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
                # a call that no longer waits (its verdict withdrawn, the call over) costs no inference
                waiting = [request for request in self._pending if not request.future.done()]
                self.withdrawn += len(self._pending) - len(waiting)
                batch, self._pending = waiting[: self.max_batch], waiting[self.max_batch :]
            if batch:
                self._answer(batch, self._predict(batch))

    def _predict(self, batch: list[_Request]) -> list[Prediction | Exception]:
        started = time.perf_counter()
        results: list[Prediction | Exception] = [(EndOfTurnState.INCOMPLETE, None)] * len(batch)
        features: list[np.ndarray] = []
        rows: list[int] = []
        for i, request in enumerate(batch):
            try:
                segment = request.analyzer.speech_segment(request.audio)
                if segment is not None:
                    features.append(request.analyzer.model_features(segment))
                    rows.append(i)
            except Exception as exc:
                results[i] = exc
        if not rows:
            return results
        try:
            logits = self.session.run(None, {"input_features": np.stack(features)})[0]
        except Exception as exc:
            logger.error("smart-turn inference failed ({} calls): {}", len(rows), exc)
            for i in rows:
                results[i] = exc
            return results
        self.batches.append(len(rows))
        elapsed_ms = (time.perf_counter() - started) * 1000
        for row, i in enumerate(rows):
            probability = float(logits[row].item())
            complete = probability > 0.5
            results[i] = (
                EndOfTurnState.COMPLETE if complete else EndOfTurnState.INCOMPLETE,
                TurnMetricsData(
                    processor="BaseSmartTurn",
                    is_complete=complete,
                    probability=probability,
                    e2e_processing_time_ms=elapsed_ms,
                ),
            )
        return results

    @staticmethod
    def _answer(batch: list[_Request], results: list[Prediction | Exception]) -> None:
        for request, result in zip(batch, results, strict=True):
            answer(request.loop, [(request.future, result)])


class PooledSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """Pipecat's ``LocalSmartTurnAnalyzerV3`` for one call, decided by the process's ``SmartTurnPool``."""

    def __init__(
        self, *, pool: SmartTurnPool, sample_rate: int | None = None, params: SmartTurnParams | None = None
    ) -> None:
        BaseSmartTurn.__init__(self, sample_rate=sample_rate, params=params)  # no session of its own
        self._pool = pool
        self._session = pool.session
        self._log_data = False
        self._held: list[tuple[float, np.ndarray]] | None = None

    def hold_audio(self) -> None:
        """Keep the speech buffered now for the next verdict, which is asked later (voice/turn_end.py
        waits for the pause's transcript first); cleared with the buffer."""
        self._held = list(self._audio_buffer)

    def _clear(self, turn_state: EndOfTurnState) -> None:
        self._held = None
        super()._clear(turn_state)

    async def analyze_end_of_turn(self) -> Prediction:
        """Smart-turn's decision on the speech held (``hold_audio``) or buffered so far (Pipecat's,
        made in the pool)."""
        audio, self._held = (self._held if self._held is not None else list(self._audio_buffer)), None
        if not audio:  # e.g. just cleared by the silence fallback: nothing to run
            return EndOfTurnState.INCOMPLETE, None
        state, result = await self._pool.predict(self, audio)
        if state == EndOfTurnState.COMPLETE:
            self._clear(state)
        logger.debug(f"End of Turn result: {state}")
        return state, result

    def speech_segment(self, audio: list[tuple[float, np.ndarray]]) -> np.ndarray | None:
        """The float32 audio the model judges: as ``BaseSmartTurn._process_speech_segment`` cuts it."""
        if not audio:
            return None
        pre_speech_secs = (self._params.pre_speech_ms + self._vad_start_secs * 1000) / 1000
        start_time = self._speech_start_time - pre_speech_secs
        start_index = next((i for i, (t, _) in enumerate(audio) if t >= start_time), 0)
        segment = np.concatenate([chunk for _, chunk in audio[start_index:]]).astype(np.float32) / 32768.0
        max_samples = int(self._params.max_duration_secs * self.sample_rate)
        if len(segment) > max_samples:
            segment = segment[-max_samples:]
        return segment if len(segment) else None

    def model_features(self, segment: np.ndarray) -> np.ndarray:
        """Log-mel features ``(80, 800)`` of ``segment``: as ``LocalSmartTurnAnalyzerV3`` makes them."""
        audio = self._resample_to_model_rate(segment)
        samples = MODEL_SECONDS * MODEL_SAMPLE_RATE
        if len(audio) > samples:
            audio = audio[-samples:]
        elif len(audio) < samples:
            audio = np.pad(audio, (samples - len(audio), 0), mode="constant", constant_values=0)
        return compute_whisper_log_mel_features(audio, do_normalize=True)

    async def cleanup(self) -> None:
        """Nothing of this call's to release: the session and the threads are the pool's."""
        self._executor = None
        await BaseSmartTurn.cleanup(self)
