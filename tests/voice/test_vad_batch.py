"""Silero batched across calls: each call decides exactly as Pipecat's own analyzer, one run per tick."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from phone_agent.voice.shared_models import SILERO_MODEL, _one_thread_options, _session
from phone_agent.voice.vad_batch import QUIET_RATIO, BatchedSileroVADAnalyzer, SileroBatcher
from tests.fakes.audio import pcm16_rms, read_ulaw, speech_wav, ulaw_to_pcm16

UTTERANCES = (
    "Hi there, I would like to book an appointment for next Tuesday.",
    "Tomorrow at ten please.",
    "Can you tell me your opening hours on Saturday?",
    "Thanks, that is all.",
)
SILENCE_20MS = b"\x00" * 320
PARAMS = VADParams(stop_secs=0.2)


@pytest.fixture(scope="module")
def session() -> object:
    return _session(SILERO_MODEL, _one_thread_options())


@pytest.fixture
def batcher(session: object) -> Iterator[SileroBatcher]:
    batcher = SileroBatcher(session)
    yield batcher
    batcher.close()


def call_audio(text: str, *, lead_ms: int = 400, tail_ms: int = 2600) -> bytes:
    """What a caller sends: quiet, the utterance, then quiet long enough for Silero's model reset."""
    speech = ulaw_to_pcm16(read_ulaw(speech_wav(text)))
    return SILENCE_20MS * (lead_ms // 20) + speech + SILENCE_20MS * (tail_ms // 20)


def frames(audio: bytes, frame_ms: int) -> list[bytes]:
    size = 16 * frame_ms  # 8 kHz, 16-bit
    return [audio[i : i + size] for i in range(0, len(audio), size)]


async def pipecat_states(audio_frames: list[bytes]) -> list[VADState]:
    """Today's analyzer: Pipecat's own Silero VAD, one per call."""
    stock = SileroVADAnalyzer(params=PARAMS)
    stock.set_sample_rate(8000)
    try:
        return [await stock.analyze_audio(f) for f in audio_frames]
    finally:
        await stock.cleanup()


def batched(batcher: SileroBatcher, *, volume_gate: bool = False) -> BatchedSileroVADAnalyzer:
    """A call's analyzer; scoring every window (no volume gate) it decides exactly as Pipecat's."""
    analyzer = BatchedSileroVADAnalyzer(batcher=batcher, params=PARAMS, volume_gate=volume_gate)
    analyzer.set_sample_rate(8000)  # the phone's rate: no resampling, 256-sample windows
    return analyzer


@pytest.mark.parametrize("frame_ms", [20, 40, 100])
async def test_each_frame_gets_the_state_pipecats_analyzer_gives(
    batcher: SileroBatcher, frame_ms: int
) -> None:
    audio = frames(call_audio(UTTERANCES[0]), frame_ms)  # 100 ms frames hold 3 windows, 40 ms 1 or 2
    expected = await pipecat_states(audio)
    analyzer = batched(batcher)
    ours = [await analyzer.analyze_audio(f) for f in audio]
    assert ours == expected
    assert VADState.SPEAKING in ours and ours[-1] == VADState.QUIET
    assert analyzer.num_frames_required() == 256  # 32 ms at 8 kHz: the phone's audio as it comes
    assert batcher.rows == len(b"".join(audio)) // 512  # every window scored in a batch, none on the loop


async def test_thirty_calls_at_once_each_get_their_own_decisions_in_one_run_per_tick(
    batcher: SileroBatcher,
) -> None:
    calls = [frames(call_audio(UTTERANCES[i % 4], lead_ms=20 * (i % 7)), 20) for i in range(30)]
    expected = [await pipecat_states(audio) for audio in calls[:4]]
    expected += [await pipecat_states(audio) for audio in calls[4:]]
    runs: list[tuple[float, int]] = []
    batcher.on_inference = lambda rows: runs.append((time.monotonic(), rows))

    async def feed(audio: list[bytes]) -> list[VADState]:
        analyzer = batched(batcher)
        return [await analyzer.analyze_audio(f) for f in audio]

    results = await asyncio.gather(*(feed(audio) for audio in calls))

    assert results == expected  # every call its own states, none mixed up with another's
    windows = sum(len(b"".join(audio)) // 512 for audio in calls)
    assert batcher.rows == windows == sum(rows for _, rows in runs)
    assert max(rows for _, rows in runs) == 30  # one row per call and run
    assert len(runs) < windows / 10  # calls share runs: ~one run per tick for all of them
    ticks = (runs[-1][0] - runs[0][0]) / batcher.tick_secs
    assert len(runs) <= ticks + 2  # no more than one run per tick


async def test_a_call_that_ended_leaves_nothing_behind(batcher: SileroBatcher) -> None:
    analyzer = batched(batcher)
    for f in frames(call_audio(UTTERANCES[1], tail_ms=200), 20):
        await analyzer.analyze_audio(f)
    gone = weakref.ref(analyzer)
    await analyzer.cleanup()
    del analyzer
    gc.collect()
    assert gone() is None  # the batcher holds no call's state between ticks


async def test_a_call_cancelled_while_waiting_does_not_stop_the_others(batcher: SileroBatcher) -> None:
    leaving, staying = batched(batcher), batched(batcher)
    window = frames(call_audio(UTTERANCES[2]), 40)
    waiting = asyncio.ensure_future(leaving.analyze_audio(window[0]))
    await asyncio.sleep(0)
    waiting.cancel()
    states = [await staying.analyze_audio(f) for f in window]
    assert states == await pipecat_states(window)


async def test_after_close_calls_still_get_pipecats_decisions(session: object) -> None:
    batcher = SileroBatcher(session)
    batcher.close()
    assert not batcher.running
    audio = frames(call_audio(UTTERANCES[3]), 20)
    analyzer = batched(batcher)
    assert [await analyzer.analyze_audio(f) for f in audio] == await pipecat_states(audio)
    assert batcher.inferences == 0


def speech_segments(states: Sequence[VADState]) -> list[tuple[int, int]]:
    """(start, stop) frame of each stretch Pipecat reports as speech: SPEAKING until QUIET again."""
    segments: list[tuple[int, int]] = []
    start: int | None = None
    for i, state in enumerate(states):
        if state == VADState.SPEAKING and start is None:
            start = i
        elif state == VADState.QUIET and start is not None:
            segments.append((start, i))
            start = None
    return segments


def whole_call(*, noise: float = 0.0) -> bytes:
    """A caller's side of a call: each utterance, then 3 s of quiet while the agent answers."""
    audio = SILENCE_20MS * 20
    for text in UTTERANCES:
        audio += ulaw_to_pcm16(read_ulaw(speech_wav(text))) + SILENCE_20MS * 150
    if not noise:
        return audio
    hiss = np.random.default_rng(7).normal(0.0, noise, len(audio) // 2)
    return (np.frombuffer(audio, np.int16) + hiss).astype(np.int16).tobytes()


@pytest.mark.parametrize("frame_ms", [20, 40])  # 40: the pipeline's caller frames (voice/serializer.py)
@pytest.mark.parametrize("noise", [0.0, 30.0], ids=["digital-silence", "line-hiss"])
async def test_quiet_windows_are_not_scored_and_speech_starts_and_stops_as_with_pipecat(
    batcher: SileroBatcher, noise: float, frame_ms: int
) -> None:
    audio = frames(whole_call(noise=noise), frame_ms)
    expected = speech_segments(await pipecat_states(audio))
    analyzer = batched(batcher, volume_gate=True)
    ours = speech_segments([await analyzer.analyze_audio(f) for f in audio])

    assert len(expected) == len(UTTERANCES)  # one segment per utterance: no word lost, none split
    assert len(ours) == len(expected)
    early, late = 160 // frame_ms, 40 // frame_ms
    for (start, stop), (pipecat_start, pipecat_stop) in zip(ours, expected, strict=True):  # in frames
        assert -early <= start - pipecat_start <= late  # the same speech, from 160 ms before to 40 after
        assert 0 <= stop - pipecat_stop <= late  # its end, at most 40 ms later
    windows = len(b"".join(audio)) // 512
    assert analyzer.skipped > windows / 2  # the quiet half of the call never reaches the model
    assert batcher.rows == windows - analyzer.skipped  # every other window is scored in a batch


async def test_after_a_long_quiet_the_model_starts_afresh(batcher: SileroBatcher) -> None:
    analyzer = batched(batcher, volume_gate=True)
    for f in frames(call_audio(UTTERANCES[0], tail_ms=0), 20):
        await analyzer.analyze_audio(f)
    assert analyzer.call_model._state.any()  # the model's memory of the speech
    scored = batcher.rows
    for f in frames(SILENCE_20MS * 125, 20):  # 2.5 s of quiet
        await analyzer.analyze_audio(f)
    assert batcher.rows - scored <= 5  # scored only while the smoothed volume decays below the gate
    assert not analyzer.call_model._state.any()  # Pipecat's periodic reset fired on the skipped quiet


def speech_end_secs(audio: bytes) -> float:
    """The end of the last 20 ms of ``audio`` not near-silent (RMS above 200, as the bench's caller)."""
    loud = [i for i, f in enumerate(frames(audio, 20)) if pcm16_rms(f) > 200]
    return (loud[-1] + 1) * 0.020


async def first_pause(
    analyzer: BatchedSileroVADAnalyzer, audio: bytes, end: float
) -> tuple[float, float]:
    """(end of the frame, in seconds, where Silero first scores the speech ending at ``end`` low;
    silent_secs there)."""
    seen_speech, at = False, 0.0
    for f in frames(audio, 20):
        state = await analyzer.analyze_audio(f)
        at += len(f) / 16000
        seen_speech = seen_speech or state == VADState.SPEAKING
        if seen_speech and state == VADState.STOPPING and at > end:
            return at, analyzer.silent_secs
    raise AssertionError("no pause after the speech")


async def test_a_pause_is_dated_from_the_callers_last_loud_window_not_from_silero_s_first_low_score(
    batcher: SileroBatcher,
) -> None:
    late = []  # how long after the words Silero first scores the pause low
    for text in UTTERANCES:
        audio = call_audio(text, tail_ms=1000)
        end = speech_end_secs(audio)
        at, silent = await first_pause(batched(batcher, volume_gate=True), audio, end)
        late.append(at - end)
        assert -0.032 <= (at - silent) - end <= 0.032, text  # dated within a window of the words' end
    # Silero's recurrent state goes on scoring the digital silence after most of them as speech
    assert sorted(late)[1] >= 0.064, late


async def test_in_noise_near_the_voice_s_level_a_pause_is_counted_as_pipecat_counts_it(
    batcher: SileroBatcher,
) -> None:
    clean = call_audio(UTTERANCES[1], tail_ms=1000)
    speech = np.frombuffer(clean, np.int16).astype(np.float64)
    peak = max(pcm16_rms(w) for w in frames(speech.astype(np.int16).tobytes(), 32))
    hiss = np.random.default_rng(3).normal(0.0, 2 * QUIET_RATIO * peak, len(speech))
    noisy = np.clip(speech + hiss, -32768, 32767).astype(np.int16).tobytes()
    analyzer = batched(batcher, volume_gate=True)
    _, silent = await first_pause(analyzer, noisy, speech_end_secs(clean))
    assert silent == pytest.approx(0.032)  # one window: no lead, Pipecat's count
    assert analyzer.pause_lead_secs == 0.0
