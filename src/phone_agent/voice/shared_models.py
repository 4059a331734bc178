"""Silero VAD and smart-turn with their ONNX models loaded once per process, shared by every call.

Pipecat builds a new onnxruntime session per call for each model: ~13 MB (Silero) + ~11 MB
(smart-turn) of memory and tens of milliseconds of CPU before the call can start, and one model
thread per call. A session holds no per-stream state and may be run from several threads at once;
the only per-call state, Silero's recurrent state and audio context, stays per call (each call gets
a shallow copy of the model wrapper with fresh state). Smart-turn inference for every call runs on
one small shared thread pool instead of a thread per call.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

SMART_TURN_THREADS = 2  # the machine's cores are shared with the calls' event loop

_lock = threading.Lock()
_silero: SileroOnnxModel | None = None
_smart_turn: LocalSmartTurnAnalyzerV3 | None = None
_smart_turn_pool: ThreadPoolExecutor | None = None


def _silero_prototype() -> SileroOnnxModel:
    global _silero
    with _lock:
        if _silero is None:
            _silero = SileroVADAnalyzer()._model
        return _silero


def _smart_turn_prototype() -> LocalSmartTurnAnalyzerV3:
    global _smart_turn, _smart_turn_pool
    with _lock:
        if _smart_turn is None:
            _smart_turn = LocalSmartTurnAnalyzerV3()
            _smart_turn_pool = ThreadPoolExecutor(SMART_TURN_THREADS, thread_name_prefix="smart-turn")
        return _smart_turn


def preload_models() -> None:
    """Load both models now (at startup) rather than in the first call."""
    _silero_prototype()
    _smart_turn_prototype()


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """`SileroVADAnalyzer` on the process-wide Silero session, with this call's own state.

    It also analyses on the event loop: Pipecat hands every 20 ms frame to a thread of its own per
    call, and the hand-off (submit, wake-up, a thread per call) costs more than the work, which is
    appending to a buffer or, every 32 ms, a ~0.1 ms Silero window."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        model = copy.copy(_silero_prototype())
        model.reset_states()
        self._model = model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        return self._run_analyzer(buffer)


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """`LocalSmartTurnAnalyzerV3` on the process-wide smart-turn session and thread pool."""

    def __init__(self, *, sample_rate: int | None = None, params: SmartTurnParams | None = None) -> None:
        BaseSmartTurn.__init__(self, sample_rate=sample_rate, params=params)
        prototype = _smart_turn_prototype()
        self._log_data = prototype._log_data
        self._session = prototype._session

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        assert _smart_turn_pool is not None
        return _smart_turn_pool

    async def cleanup(self) -> None:
        """Nothing of this call's to release: the session and the pool are shared."""
        self._executor = None
        await BaseSmartTurn.cleanup(self)
