"""Silero and smart-turn: one ONNX session and one set of threads per process; each call its own state."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState

from phone_agent.app import create_app
from phone_agent.voice import shared_models
from phone_agent.voice.shared_models import (
    SharedSileroVADAnalyzer,
    SharedSmartTurnAnalyzer,
    close_models,
    preload_models,
)
from tests.conftest import make_settings
from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16


def _windows(text: str) -> list[bytes]:
    """Real speech as a phone call carries it (8 kHz), in Silero's 256-sample windows."""
    pcm = ulaw_to_pcm16(read_ulaw(speech_wav(text)))
    return [pcm[i : i + 512] for i in range(0, len(pcm) - 512, 512)]


def _vad(analyzer: SileroVADAnalyzer) -> SileroVADAnalyzer:
    analyzer.set_sample_rate(8000)
    return analyzer


def _model_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(("silero-batcher", "smart-turn"))}


def test_calls_share_the_session_but_not_the_state() -> None:
    first, second = _vad(SharedSileroVADAnalyzer()), _vad(SharedSileroVADAnalyzer())
    assert first._model.session is second._model.session
    windows = _windows("Good morning, I would like to book a table.")
    for window in windows[:20]:
        first.voice_confidence(window)
    assert not np.array_equal(first._model._state, second._model._state)  # second heard nothing


def test_shared_vad_hears_what_pipecats_own_vad_hears() -> None:
    shared, stock = _vad(SharedSileroVADAnalyzer()), _vad(SileroVADAnalyzer())
    windows = _windows("Tomorrow at ten please.")
    ours = [shared.voice_confidence(w) for w in windows]
    theirs = [stock.voice_confidence(w) for w in windows]
    assert np.allclose(ours, theirs, atol=1e-5)
    assert max(ours) > 0.5  # it is speech


async def test_smart_turn_analyzers_share_session_and_pool_across_cleanup() -> None:
    first, second = SharedSmartTurnAnalyzer(), SharedSmartTurnAnalyzer()
    assert first._session is second._session and first._pool is second._pool
    await first.cleanup()  # one call ending must not stop the others' model threads
    assert second._pool.threads >= 1 and all(t.is_alive() for t in second._pool._threads)


async def test_vad_states_match_pipecats_and_no_thread_per_call_is_used() -> None:
    shared, stock = _vad(SharedSileroVADAnalyzer()), _vad(SileroVADAnalyzer())
    shared.volume_gate = False  # every window scored: Pipecat's decisions exactly (the gate: test_vad_batch)
    pcm = ulaw_to_pcm16(read_ulaw(speech_wav("Can you tell me your opening hours on Saturday?")))
    frames = [pcm[i : i + 320] for i in range(0, len(pcm), 320)]  # 20 ms frames, as from Twilio
    frames += [b"\x00" * 320] * 60  # 1.2 s of silence after the speech
    ours = [await shared.analyze_audio(f) for f in frames]
    theirs = [await stock.analyze_audio(f) for f in frames]
    assert ours == theirs and VADState.SPEAKING in ours and ours[-1] == VADState.QUIET
    assert not shared._executor._threads  # scored by the process's batcher thread


def test_preload_is_idempotent_and_safe_from_many_threads() -> None:
    close_models()
    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda _: preload_models(), range(16)))
    batcher, pool = shared_models.silero_batcher(), shared_models.smart_turn_pool()
    preload_models()
    assert shared_models.silero_batcher() is batcher and shared_models.smart_turn_pool() is pool
    assert _model_threads() == {"silero-batcher"} | {f"smart-turn-{i}" for i in range(pool.threads)}


async def test_close_stops_the_model_threads_and_a_later_call_loads_them_again() -> None:
    preload_models()
    batcher = shared_models.silero_batcher()
    close_models()
    close_models()  # twice is harmless
    assert not batcher.running and _model_threads() == set()
    analyzer = _vad(SharedSileroVADAnalyzer())  # e.g. a test app started after another stopped
    assert analyzer._batcher is not batcher and analyzer._batcher.running
    assert await analyzer.analyze_audio(b"\x00" * 512) == VADState.QUIET


async def test_an_app_taking_calls_starts_the_model_threads_and_stops_them_on_exit(tmp_path: Path) -> None:
    close_models()
    app = create_app(make_settings(tmp_path), "voice-bridge")
    async with app.router.lifespan_context(app):
        assert "silero-batcher" in _model_threads() and "smart-turn-0" in _model_threads()
    assert _model_threads() == set()
