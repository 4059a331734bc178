"""Silero and smart-turn share one ONNX session per process; each call keeps its own state."""

from __future__ import annotations

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState

from phone_agent.voice.shared_models import SharedSileroVADAnalyzer, SharedSmartTurnAnalyzer
from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16


def _windows(text: str) -> list[bytes]:
    """Real speech as a phone call carries it (8 kHz), in Silero's 256-sample windows."""
    pcm = ulaw_to_pcm16(read_ulaw(speech_wav(text)))
    return [pcm[i : i + 512] for i in range(0, len(pcm) - 512, 512)]


def _vad(analyzer: SileroVADAnalyzer) -> SileroVADAnalyzer:
    analyzer.set_sample_rate(8000)
    return analyzer


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
    assert first._session is second._session
    assert first._model_executor is second._model_executor
    await first.cleanup()  # one call ending must not stop the others' model thread
    assert second._model_executor.submit(lambda: 42).result(timeout=10) == 42


async def test_vad_states_match_pipecats_and_no_thread_is_used() -> None:
    shared, stock = _vad(SharedSileroVADAnalyzer()), _vad(SileroVADAnalyzer())
    pcm = ulaw_to_pcm16(read_ulaw(speech_wav("Can you tell me your opening hours on Saturday?")))
    frames = [pcm[i : i + 320] for i in range(0, len(pcm), 320)]  # 20 ms frames, as from Twilio
    frames += [b"\x00" * 320] * 60  # 1.2 s of silence after the speech
    ours = [await shared.analyze_audio(f) for f in frames]
    theirs = [await stock.analyze_audio(f) for f in frames]
    assert ours == theirs and VADState.SPEAKING in ours and ours[-1] == VADState.QUIET
    assert not shared._executor._threads  # analysed on the event loop
