"""Silero VAD and smart-turn loaded once per process and shared by every call.

Pipecat builds an onnxruntime session per call for each model (~13 MB + ~11 MB and tens of ms
of CPU before the call can start) and a thread per call for each. Here a process loads each
model once and runs it for all its calls: Silero through one ``SileroBatcher`` (one inference
per 10 ms tick for every call with a new window, in one worker thread) and smart-turn through
one ``SmartTurnPool`` (a few model threads, batched when calls stop speaking together). A call
keeps only its own state (Silero's recurrent state, its audio buffers and counters).

``preload_models()`` loads both (at the start of a role that takes calls, so the first call
does not pay for it), and ``import_call_modules()`` the modules a call would import on first use;
``close_models()`` stops their threads (at shutdown). Both are idempotent
and thread-safe; a call started after ``close_models()`` loads them again.
"""

from __future__ import annotations

import importlib
import threading
from importlib import resources

import onnxruntime
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.vad_analyzer import VADParams

from phone_agent.voice.turn_pool import PooledSmartTurnAnalyzer, SmartTurnPool, pool_threads
from phone_agent.voice.vad_batch import BatchedSileroVADAnalyzer, SileroBatcher

SILERO_MODEL = ("pipecat.audio.vad.data", "silero_vad.onnx")
SMART_TURN_MODEL = ("pipecat.audio.turn.smart_turn.data", "smart-turn-v3.2-cpu.onnx")

# Imported on first use by a call (~25-130 ms on the event loop of a process's first call): the
# OpenAI SDK's chat resources (``client.chat.completions``, at the first LLM request: the package
# imports its submodules lazily), the fallback voice's service (built with every call), numpy's FFT
# (smart-turn's features, at the first end of turn).
CALL_MODULES = (
    "openai.resources.chat.chat",
    "openai.resources.chat.completions.completions",
    "pipecat.services.openai.tts",
    "numpy.fft",
)
# A streamed reply's first chunk: validating one builds the pydantic schemas the SDK defers
# (~5 ms at the first LLM reply otherwise).
SAMPLE_CHUNK = {
    "id": "warm-up",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "warm-up",
    "choices": [
        {
            "index": 0,
            "finish_reason": None,
            "delta": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}
                ],
            },
        }
    ],
}

_lock = threading.Lock()
_batcher: SileroBatcher | None = None
_pool: SmartTurnPool | None = None


def _session(model: tuple[str, str], options: onnxruntime.SessionOptions) -> onnxruntime.InferenceSession:
    path = str(resources.files(model[0]).joinpath(model[1]))
    return onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def _one_thread_options() -> onnxruntime.SessionOptions:
    """One thread per inference (as Pipecat sets both models): calls run in parallel, not ops; no arena."""
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    # onnxruntime's arena grows to the largest batch of calls and never shrinks (+70 MB for good after
    # a burst of calls); without it an inference's buffers go back to malloc (ops/heap.py trims them)
    options.enable_cpu_mem_arena = False
    return options


def silero_batcher() -> SileroBatcher:
    """The process's Silero batcher (loaded and started on first use)."""
    global _batcher
    with _lock:
        if _batcher is None:
            _batcher = SileroBatcher(_session(SILERO_MODEL, _one_thread_options()))
        return _batcher


def smart_turn_pool() -> SmartTurnPool:
    """The process's smart-turn pool (loaded and started on first use)."""
    global _pool
    with _lock:
        if _pool is None:
            options = _one_thread_options()  # as LocalSmartTurnAnalyzerV3 sets it up
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            _pool = SmartTurnPool(_session(SMART_TURN_MODEL, options), threads=pool_threads())
        return _pool


def preload_models() -> None:
    """Load both models and start their threads now (at startup) rather than in the first call."""
    silero_batcher()
    smart_turn_pool()


def import_call_modules() -> None:
    """Import ``CALL_MODULES`` and build the reply chunk's schemas now (at startup, off the loop)
    rather than in the first call."""
    for name in CALL_MODULES:
        importlib.import_module(name)
    from openai.types.chat import ChatCompletionChunk

    ChatCompletionChunk.model_validate(SAMPLE_CHUNK)


def close_models() -> None:
    """Stop the batcher's and the pool's threads (at shutdown); calls still running finish on
    Pipecat's own path."""
    global _batcher, _pool
    with _lock:
        batcher, pool, _batcher, _pool = _batcher, _pool, None, None
    if batcher is not None:
        batcher.close()
    if pool is not None:
        pool.close()


class SharedSileroVADAnalyzer(BatchedSileroVADAnalyzer):
    """Pipecat's ``SileroVADAnalyzer`` for one call, on the process's Silero batcher."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        super().__init__(batcher=silero_batcher(), sample_rate=sample_rate, params=params)


class SharedSmartTurnAnalyzer(PooledSmartTurnAnalyzer):
    """Pipecat's ``LocalSmartTurnAnalyzerV3`` for one call, on the process's smart-turn pool."""

    def __init__(self, *, sample_rate: int | None = None, params: SmartTurnParams | None = None) -> None:
        super().__init__(pool=smart_turn_pool(), sample_rate=sample_rate, params=params)
