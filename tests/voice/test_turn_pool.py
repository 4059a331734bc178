"""Smart-turn in a shared pool: the decisions of Pipecat's analyzer, batched when calls stop together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn, SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from phone_agent.voice.shared_models import smart_turn_pool
from phone_agent.voice.turn_pool import PooledSmartTurnAnalyzer, SmartTurnPool, pool_threads
from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16

UTTERANCES = (
    "Tomorrow at ten please.",
    "Hi there, I would like to book an appointment for next",
    "Can you tell me your opening hours on Saturday?",
    "My number is five five five, one two",
    "Thanks, that is all.",
)
PARAMS = SmartTurnParams(stop_secs=1.0)


@pytest.fixture
def pool() -> Iterator[SmartTurnPool]:
    pool = SmartTurnPool(smart_turn_pool().session, threads=1, max_batch=4)
    yield pool
    pool.close()


def hear(analyzer: BaseSmartTurn, text: str) -> None:
    """The caller says ``text`` (20 ms frames flagged as speech), then 200 ms of quiet (VAD stop)."""
    analyzer.set_sample_rate(8000)
    pcm = ulaw_to_pcm16(read_ulaw(speech_wav(text)))
    for i in range(0, len(pcm), 320):
        analyzer.append_audio(pcm[i : i + 320], is_speech=True)
    for _ in range(10):
        analyzer.append_audio(b"\x00" * 320, is_speech=False)


async def pipecat_decision(text: str) -> tuple[EndOfTurnState, float]:
    stock = LocalSmartTurnAnalyzerV3(params=PARAMS)
    hear(stock, text)
    try:
        state, metrics = await stock.analyze_end_of_turn()
    finally:
        await stock.cleanup()
    assert metrics is not None
    return state, metrics.probability  # type: ignore[attr-defined]


async def test_decisions_and_probabilities_are_pipecats(pool: SmartTurnPool) -> None:
    decisions = []
    for text in UTTERANCES:
        analyzer = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
        hear(analyzer, text)
        state, metrics = await analyzer.analyze_end_of_turn()
        expected_state, expected_probability = await pipecat_decision(text)
        assert metrics is not None
        assert state == expected_state
        assert metrics.probability == pytest.approx(expected_probability, abs=1e-5)  # type: ignore[attr-defined]
        assert not analyzer._audio_buffer or state == EndOfTurnState.INCOMPLETE  # cleared when complete
        decisions.append(state)
    assert {EndOfTurnState.COMPLETE, EndOfTurnState.INCOMPLETE} <= set(decisions)  # both kinds were judged


async def test_calls_stopping_together_are_batched_and_each_gets_its_own_decision(
    pool: SmartTurnPool,
) -> None:
    analyzers = []
    for text in UTTERANCES:
        analyzer = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
        hear(analyzer, text)
        analyzers.append(analyzer)
    together = await asyncio.gather(*(a.analyze_end_of_turn() for a in analyzers))
    assert sum(pool.batches) == 5 and max(pool.batches) > 1 and max(pool.batches) <= pool.max_batch
    for text, (state, metrics) in zip(UTTERANCES, together, strict=True):
        expected_state, expected_probability = await pipecat_decision(text)
        assert metrics is not None
        assert (state, metrics.probability) == (expected_state, pytest.approx(expected_probability, abs=1e-5))  # type: ignore[attr-defined]


async def test_no_speech_buffered_is_incomplete_without_a_model_run(pool: SmartTurnPool) -> None:
    analyzer = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
    analyzer.set_sample_rate(8000)
    assert await analyzer.analyze_end_of_turn() == (EndOfTurnState.INCOMPLETE, None)
    assert pool.batches == []


async def test_a_closed_pool_still_decides_and_its_threads_are_gone() -> None:
    pool = SmartTurnPool(smart_turn_pool().session, threads=2)
    names = {t.name for t in threading.enumerate()}
    assert {"smart-turn-0", "smart-turn-1"} <= names
    pool.close()
    assert all(not t.is_alive() for t in pool._threads)
    analyzer = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
    hear(analyzer, UTTERANCES[0])
    state, _ = await analyzer.analyze_end_of_turn()
    assert state == (await pipecat_decision(UTTERANCES[0]))[0]


def test_the_pool_never_has_more_threads_than_the_process_has_cores() -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    assert pool_threads(8) == min(8, cores) and pool_threads(1) == 1


async def test_by_default_calls_stopping_together_each_get_a_run_of_their_own() -> None:
    pool = SmartTurnPool(smart_turn_pool().session, threads=1)  # batching does not pay on these CPUs
    try:
        analyzers = []
        for text in UTTERANCES[:3]:
            analyzer = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
            hear(analyzer, text)
            analyzers.append(analyzer)
        together = await asyncio.gather(*(a.analyze_end_of_turn() for a in analyzers))
        assert pool.batches == [1, 1, 1]
        assert [state for state, _ in together] == [(await pipecat_decision(t))[0] for t in UTTERANCES[:3]]
    finally:
        pool.close()


class GatedSession:
    """The real model behind a gate: the first run waits until the test opens it."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.gate = threading.Event()
        self.started = threading.Event()
        self.runs = 0

    def run(self, outputs: object, inputs: dict[str, object]) -> object:
        self.runs += 1
        self.started.set()
        self.gate.wait(10)
        return self.session.run(outputs, inputs)  # type: ignore[attr-defined]


async def test_a_call_that_no_longer_waits_costs_no_inference() -> None:
    session = GatedSession(smart_turn_pool().session)
    pool = SmartTurnPool(session, threads=1)
    try:
        first, second, third = (PooledSmartTurnAnalyzer(pool=pool, params=PARAMS) for _ in range(3))
        for analyzer, text in zip((first, second, third), UTTERANCES, strict=False):
            hear(analyzer, text)
        running = asyncio.create_task(first.analyze_end_of_turn())  # takes the only thread
        assert await asyncio.to_thread(session.started.wait, 10)
        withdrawn = asyncio.create_task(second.analyze_end_of_turn())  # queued behind it ...
        waiting = asyncio.create_task(third.analyze_end_of_turn())
        await asyncio.sleep(0.05)
        withdrawn.cancel()  # ... and no longer wanted (the caller spoke again, the call ended)
        session.gate.set()
        (state, _), (third_state, _) = await asyncio.gather(running, waiting)
        assert withdrawn.cancelled()
        assert session.runs == 2 and pool.withdrawn == 1  # the withdrawn request never reached the model
        assert state == (await pipecat_decision(UTTERANCES[0]))[0]
        assert third_state == (await pipecat_decision(UTTERANCES[2]))[0]
    finally:
        pool.close()


async def test_a_verdict_asked_later_judges_the_speech_held_at_the_vad_stop(pool: SmartTurnPool) -> None:
    text = UTTERANCES[1]  # ("... for next": the model's verdict is sensitive to what follows)
    held = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
    hear(held, text)
    held.hold_audio()  # the VAD stop; the verdict is asked once the transcript is in
    for _ in range(30):  # 0.6 s more of the caller's silence buffered meanwhile
        held.append_audio(b"\x00" * 320, is_speech=False)
    state, metrics = await held.analyze_end_of_turn()
    expected_state, expected_probability = await pipecat_decision(text)
    assert metrics is not None and state == expected_state
    assert metrics.probability == pytest.approx(expected_probability, abs=1e-5)  # type: ignore[attr-defined]

    cleared = PooledSmartTurnAnalyzer(pool=pool, params=PARAMS)
    hear(cleared, text)
    cleared.hold_audio()
    cleared.clear()  # the turn ended meanwhile (the sentence-end rule, the silence fallback)
    runs = len(pool.batches)
    assert await cleared.analyze_end_of_turn() == (EndOfTurnState.INCOMPLETE, None)
    assert len(pool.batches) == runs  # nothing held or buffered: no model run
