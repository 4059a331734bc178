"""Latency accounting: from what the callers observed, what the fakes received, and the bot's CPU
and memory samples, to the figures of one run.

Per answered turn (t0 = the caller's last speech frame, ta = the first agent audio frame after it):
  voice-to-voice = ta - t0
  the request chain that produced the answer, read backwards from ta among the fakes' records:
  TTS context opened (tts) <- chat completion request (llm) <- transcription request (stt, when the
  STT is segmented)
  end-of-turn wait = llm - t0 - configured STT latency: the time until the pipeline has both decided
  the turn is over and could have had its transcript. With a segmented STT whose request went out
  at the VAD stop and came back in time (llm - stt <= STT latency + 100 ms), it is stt - t0 instead,
  so the STT client's own cost counts as overhead; a longer STT leg means the LLM waited for the
  turn decision (smart-turn), which is end-of-turn wait.
  own overhead = voice-to-voice - (STT + LLM first token + TTS first audio, as configured)
                 - end-of-turn wait
A turn is only broken down when its window (t0, ta) holds exactly one request of each kind, so
concurrent calls cannot be mixed up; `attributed` says how many were.

Reply shape of a turn: the LLM fake's shape for caller turn k (its position in the call), or, when
(t0, ta) holds exactly one chat request, the shape that request was answered with.
A missed turn got no agent audio within the caller's answer timeout; a late one got it more than
`late_after` seconds after the caller stopped. A turn cut short by the turn decision shows as a
chat request whose conversation holds more caller turns than the call's caller spoke: each
utterance split in two adds one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.callers import BURST_GAP, CallResult
from bench.providers import Latencies
from bench.replies import shape_of_turn
from bench.targets import Sample

FRAME_RATE = 8000  # bytes of mu-law per second
STT_DECISION_SLACK = 0.1  # an STT leg longer than the STT latency + this waited for the turn decision
UNDERRUN_TOLERANCE = 0.01  # seconds a frame may arrive after its playout time before it is an underrun
LATE_AFTER = 5.0  # a reply starting later than this after the caller stopped is late (Pipecat's 3 s
# smart-turn fallback + 0.7 s of providers + 1.3 s of slack: past it a caller asks "hello?")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear interpolation; None when there is nothing to rank."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class TurnBreakdown:
    v2v: float
    eot_wait: float | None = None
    stt_leg: float | None = None  # stt request -> llm request
    llm_leg: float | None = None  # llm request -> tts context
    tts_leg: float | None = None  # tts context -> first audio at the caller
    overhead: float | None = None


@dataclass
class RunFigures:
    """The figures of one target at one concurrency."""

    target: str
    n: int
    phase: str = "latency"  # cold (a fresh process's first call), latency, capacity (pinned) or soak
    calls: int = 0
    failed_calls: int = 0
    turns: int = 0
    unanswered: int = 0  # missed: no reply within the caller's answer timeout
    late: int = 0  # answered more than `late_after` after the caller stopped
    cut_short: int = 0  # caller utterances the bot split into two turns
    talked_over: int = 0
    v2v: list[float] = field(default_factory=list)
    eot_wait: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    legs: dict[str, list[float]] = field(default_factory=dict)
    by_utterance: dict[str, list[float]] = field(default_factory=dict)  # v2v per utterance text
    by_shape: dict[str, list[float]] = field(default_factory=dict)  # v2v per reply shape
    shapes_confirmed: int = 0  # turns whose shape was read from their own chat request
    turn_log: list[tuple[int, str, str, float]] = field(default_factory=list)  # position, text, shape, v2v
    attributed: int = 0
    greeting: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    underruns: int = 0
    cpu_percent: float | None = None  # of one core, whole bot process tree, while calls ran
    harness_cpu_percent: float | None = None  # of one core: the callers and the fakes, same span
    cores_busy: list[float] = field(default_factory=list)  # % busy per core, by anyone, same span
    rss_idle: int | None = None
    rss_peak: int | None = None
    rss_series: list[tuple[float, int]] = field(default_factory=list)
    duration: float = 0.0
    load: tuple[float, float, float] | None = None  # load average when the run ended
    loop_lag: dict[str, float] = field(default_factory=dict)  # the bot's own, bench/loop_lag.py
    errors: list[str] = field(default_factory=list)

    def p(self, name: str, q: float) -> float | None:
        return percentile(getattr(self, name), q)

    @property
    def rss_per_call(self) -> float | None:
        if self.rss_idle is None or self.rss_peak is None or not self.n:
            return None
        return (self.rss_peak - self.rss_idle) / self.n

    @property
    def cpu_per_call(self) -> float | None:
        return None if self.cpu_percent is None or not self.n else self.cpu_percent / self.n


def figures(
    target: str,
    n: int,
    calls: list[CallResult],
    moments: dict[str, list[Any]],
    latencies: Latencies,
    samples: list[Sample],
    rss_idle: int | None,
    *,
    late_after: float = LATE_AFTER,
) -> RunFigures:
    """Compute one run's figures."""
    run = RunFigures(target, n, calls=len(calls), rss_idle=rss_idle)
    stt, llm, tts = (sorted(moments.get(k, [])) for k in ("stt", "llm", "tts"))
    replies = replies_during(calls, moments.get("replies", []))
    run.cut_short = cut_short(calls, replies)
    for call in calls:
        if call.error:
            run.failed_calls += 1
            run.errors.append(call.error)
        if call.greeting_latency is not None:
            run.greeting.append(call.greeting_latency)
        for position, turn in enumerate(call.turns, start=1):
            run.turns += 1
            run.talked_over += turn.talked_over
            v2v = turn.voice_to_voice
            if v2v is None or turn.speech_ended is None or turn.first_agent_audio is None:
                run.unanswered += 1
                continue
            run.v2v.append(v2v)
            run.late += v2v > late_after
            run.by_utterance.setdefault(turn.label, []).append(v2v)
            shape, confirmed = reply_shape(position, turn.speech_ended, turn.first_agent_audio, replies)
            run.by_shape.setdefault(shape, []).append(v2v)
            run.shapes_confirmed += confirmed
            run.turn_log.append((position, turn.label, shape, v2v))
            breakdown = break_down(turn.speech_ended, turn.first_agent_audio, stt, llm, tts, latencies)
            if breakdown.overhead is not None and breakdown.eot_wait is not None:
                run.attributed += 1
                run.overhead.append(breakdown.overhead)
                run.eot_wait.append(breakdown.eot_wait)
                for leg in ("stt_leg", "llm_leg", "tts_leg"):
                    value = getattr(breakdown, leg)
                    if value is not None:
                        run.legs.setdefault(leg, []).append(value)
        gaps, underruns = pacing(call.frames)
        run.gaps.extend(gaps)
        run.underruns += underruns
    if len(samples) >= 2:
        first, last = samples[0], samples[-1]
        run.duration = last.at - first.at
        if run.duration > 0:
            run.cpu_percent = 100 * (last.cpu_seconds - first.cpu_seconds) / run.duration
        run.rss_peak = max(s.rss for s in samples)
        run.rss_series = [(s.at - first.at, s.rss) for s in samples]
    return run


def replies_during(calls: list[CallResult], replies: list[Any]) -> list[tuple[float, int, str]]:
    """The chat requests (at, caller turn, shape) made while these calls were up, by time."""
    spans = [(c.started_at, c.ended_at) for c in calls if c.started_at is not None and c.ended_at is not None]
    if not spans:
        return []
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return sorted((float(at), int(turn), str(shape)) for at, turn, shape in replies if start <= at <= end)


def reply_shape(
    position: int, t0: float, ta: float, replies: list[tuple[float, int, str]]
) -> tuple[str, bool]:
    """The shape of the reply to the caller's `position`-th turn, and whether its own chat request
    (the only one in (t0, ta)) confirmed it."""
    window = replies[bisect.bisect_right(replies, (t0, 1 << 30)) : bisect.bisect_left(replies, (ta, -1))]
    if len(window) == 1 and window[0][1] > 0:
        return window[0][2], True
    return shape_of_turn(position), False


def cut_short(calls: list[CallResult], replies: list[tuple[float, int, str]]) -> int:
    """Chat requests holding more caller turns than a call's caller spoke: one per split utterance.
    Counted against the longest call (every call speaks the same utterances)."""
    spoken = max((len(c.turns) for c in calls if not c.error), default=0)
    return sum(1 for _, turn, _ in replies if spoken and turn > spoken)


def _within(moments: list[float], start: float, end: float) -> list[float]:
    return moments[bisect.bisect_right(moments, start) : bisect.bisect_left(moments, end)]


def break_down(
    t0: float, ta: float, stt: list[float], llm: list[float], tts: list[float], latencies: Latencies
) -> TurnBreakdown:
    """Attribute the requests in (t0, ta) to this turn when they are unambiguous."""
    result = TurnBreakdown(v2v=ta - t0)
    window_tts, window_llm = _within(tts, t0, ta), _within(llm, t0, ta)
    window_stt = _within(stt, t0, ta)
    if len(window_tts) != 1 or len(window_llm) != 1 or len(window_stt) > 1:
        return result
    tts_at, llm_at = window_tts[0], window_llm[0]
    if not llm_at <= tts_at:
        return result
    result.eot_wait = max(0.0, llm_at - t0 - latencies.stt)
    if window_stt:
        stt_at = window_stt[0]
        if not stt_at <= llm_at:
            return result
        result.stt_leg = llm_at - stt_at
        if result.stt_leg <= latencies.stt + STT_DECISION_SLACK:
            result.eot_wait = stt_at - t0
    result.llm_leg = tts_at - llm_at
    result.tts_leg = ta - tts_at
    result.overhead = result.v2v - latencies.providers_total - result.eot_wait
    return result


def pacing(frames: list[tuple[float, int]]) -> tuple[list[float], int]:
    """Inter-arrival gaps of agent media inside each utterance, and playout underruns: a caller
    playing the audio in real time from the first frame of an utterance finds its buffer empty."""
    gaps: list[float] = []
    underruns = 0
    playout_start = buffered = 0.0
    previous: float | None = None
    for at, size in frames:
        if previous is None or at - previous > BURST_GAP:
            playout_start, buffered = at, 0.0
        else:
            gaps.append(at - previous)
            due = playout_start + buffered  # when the playout reaches this frame's audio
            if at > due + UNDERRUN_TOLERANCE:
                underruns += 1
                playout_start, buffered = at, 0.0  # playout resumes from this frame
        buffered += size / FRAME_RATE
        previous = at
    return gaps, underruns
