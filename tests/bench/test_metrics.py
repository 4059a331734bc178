"""Latency accounting on hand-made observations: percentiles, attribution, pacing, capacity."""

from __future__ import annotations

import pytest
from bench.callers import CallResult, TurnResult, reply_onset
from bench.metrics import break_down, figures, pacing, percentile
from bench.providers import Latencies
from bench.targets import Sample

LAT = Latencies(stt=0.2, llm_first_token=0.35, tokens_per_second=40, tts_first_audio=0.15)


def test_percentile_interpolates_and_handles_empty() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)


def test_segmented_turn_is_broken_down_into_wait_legs_and_overhead() -> None:
    # speech ends at 10.0; STT request at 10.3; LLM at 10.52; TTS text at 11.1; audio at 11.27
    turn = break_down(10.0, 11.27, [10.3], [10.52], [11.1], LAT)
    assert turn.eot_wait == pytest.approx(0.3)
    assert turn.stt_leg == pytest.approx(0.22)
    assert turn.llm_leg == pytest.approx(0.58)
    assert turn.tts_leg == pytest.approx(0.17)
    assert turn.overhead == pytest.approx(1.27 - 0.7 - 0.3)


def test_llm_waiting_for_the_turn_decision_is_end_of_turn_wait() -> None:
    # the transcript was back at 10.5, but smart-turn only let the LLM go at 13.3
    turn = break_down(10.0, 14.05, [10.3], [13.3], [13.9], LAT)
    assert turn.eot_wait == pytest.approx(3.1)
    assert turn.overhead == pytest.approx(4.05 - 0.7 - 3.1)


def test_streaming_stt_wait_is_llm_request_minus_stt_latency() -> None:
    turn = break_down(10.0, 11.0, [], [10.25], [10.62], LAT)
    assert turn.eot_wait == pytest.approx(0.05)
    assert turn.overhead == pytest.approx(1.0 - 0.7 - 0.05)


def test_ambiguous_window_is_not_attributed() -> None:
    turn = break_down(10.0, 11.3, [10.3], [10.5, 10.6], [11.1], LAT)
    assert turn.v2v == pytest.approx(1.3) and turn.overhead is None


def test_pacing_counts_gaps_inside_an_answer_and_underruns() -> None:
    # 40 ms chunks (320 bytes) every 20 ms: always ahead of playout
    steady = [(1.0 + 0.02 * i, 320) for i in range(10)]
    gaps, underruns = pacing(steady)
    assert len(gaps) == 9 and max(gaps) == pytest.approx(0.02) and underruns == 0
    # 20 ms chunks, one arriving 100 ms late: the playout ran dry once
    late = [(1.0, 160), (1.02, 160), (1.04, 160), (1.16, 160), (1.18, 160)]
    assert pacing(late)[1] == 1
    # a pause longer than the burst gap starts a new answer: no gap, no underrun
    assert pacing([(1.0, 160), (2.0, 160)]) == ([], 0)


def test_figures_from_calls_and_samples() -> None:
    call = CallResult(0, started_at=0.0, greeting_latency=0.8)
    call.turns = [TurnResult("a", 10.0, 11.27, False), TurnResult("b", 20.0, None, False)]
    call.frames = [(11.27, 320), (11.29, 320)]
    samples = [Sample(0.0, 1.0, 100 << 20), Sample(10.0, 2.0, 150 << 20)]
    run = figures("stock", 1, [call], {"stt": [10.3], "llm": [10.52], "tts": [11.1]}, LAT, samples, 100 << 20)
    assert (run.turns, run.unanswered, run.attributed) == (2, 1, 1)
    assert run.v2v == [pytest.approx(1.27)] and run.greeting == [0.8]
    assert run.cpu_percent == pytest.approx(10.0)
    assert run.rss_per_call == 50 << 20


def test_turns_get_reply_shapes_late_and_cut_short_counts() -> None:
    call = CallResult(0, started_at=0.0, greeting_latency=0.5, ended_at=60.0)
    call.turns = [
        TurnResult("a", 10.0, 11.2, False),  # its own chat request answered turn 1: comma-clause
        TurnResult("b", 20.0, 26.0, False),  # two requests in its window: shape from position 2
        TurnResult("c", 30.0, None, False),  # missed
    ]
    replies = [
        (5.0, 0, "greeting"),
        (10.3, 1, "comma-clause"),
        (20.3, 2, "no-punctuation"),
        (21.0, 3, "one-word"),  # the caller's second utterance was split: a third caller turn
        (30.3, 4, "long"),  # ... and the bot heard four turns from three utterances
        (99.0, 9, "long"),  # after the call: another run's
    ]
    moments = {"stt": [], "llm": [], "tts": [], "replies": replies}
    run = figures("ours", 1, [call], moments, LAT, [], None, late_after=5.0)
    assert (run.turns, run.unanswered, run.late) == (3, 1, 1)
    assert run.by_shape == {"comma-clause": [pytest.approx(1.2)], "no-punctuation": [pytest.approx(6.0)]}
    assert run.shapes_confirmed == 1 and run.cut_short == 1
    assert [t[:3] for t in run.turn_log] == [(1, "a", "comma-clause"), (2, "b", "no-punctuation")]


def test_reply_onset_skips_the_tail_of_an_earlier_answer() -> None:
    earlier = [1.0 + 0.02 * i for i in range(100)]  # an answer still arriving until 2.98 ...
    reply = [3.5 + 0.02 * i for i in range(10)]  # ... then, after a pause, the reply
    audible = earlier + reply
    assert reply_onset(audible, 2.0, None) == 3.5  # the caller stopped at 2.0, mid-answer
    assert reply_onset(audible, 0.5, None) == 1.0  # quiet before: the first frame is the onset
    assert reply_onset(audible, 2.0, 3.2) is None  # the caller spoke again before any reply
    assert reply_onset(audible, 4.0, None) is None and reply_onset(audible, None, None) is None
