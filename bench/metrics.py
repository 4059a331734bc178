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
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.callers import CallResult
from bench.providers import Latencies
from bench.targets import Sample

FRAME_RATE = 8000  # bytes of mu-law per second
BURST_GAP = 0.3  # seconds without agent audio that separate two utterances
STT_DECISION_SLACK = 0.1  # an STT leg longer than the STT latency + this waited for the turn decision
UNDERRUN_TOLERANCE = 0.01  # seconds a frame may arrive after its playout time before it is an underrun


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
    calls: int = 0
    failed_calls: int = 0
    turns: int = 0
    unanswered: int = 0
    talked_over: int = 0
    v2v: list[float] = field(default_factory=list)
    eot_wait: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    legs: dict[str, list[float]] = field(default_factory=dict)
    by_utterance: dict[str, list[float]] = field(default_factory=dict)  # v2v per utterance text
    attributed: int = 0
    greeting: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    underruns: int = 0
    cpu_percent: float | None = None  # of one core, whole bot process tree, while calls ran
    rss_idle: int | None = None
    rss_peak: int | None = None
    rss_series: list[tuple[float, int]] = field(default_factory=list)
    duration: float = 0.0
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
    moments: dict[str, list[float]],
    latencies: Latencies,
    samples: list[Sample],
    rss_idle: int | None,
) -> RunFigures:
    """Compute one run's figures."""
    run = RunFigures(target, n, calls=len(calls), rss_idle=rss_idle)
    stt, llm, tts = (sorted(moments.get(k, [])) for k in ("stt", "llm", "tts"))
    for call in calls:
        if call.error:
            run.failed_calls += 1
            run.errors.append(call.error)
        if call.greeting_latency is not None:
            run.greeting.append(call.greeting_latency)
        for turn in call.turns:
            run.turns += 1
            run.talked_over += turn.talked_over
            v2v = turn.voice_to_voice
            if v2v is None or turn.speech_ended is None or turn.first_agent_audio is None:
                run.unanswered += 1
                continue
            run.v2v.append(v2v)
            run.by_utterance.setdefault(turn.label, []).append(v2v)
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


def largest_n_within(runs: Sequence[RunFigures], factor: float = 1.2) -> int | None:
    """The largest N whose voice-to-voice p95 stays within `factor` x the N=1 p95 (and answered)."""
    base = next((r for r in runs if r.n == 1), None)
    base_p95 = base.p("v2v", 95) if base else None
    if base_p95 is None:
        return None
    best = None
    for run in sorted(runs, key=lambda r: r.n):
        p95 = run.p("v2v", 95)
        if p95 is not None and p95 <= factor * base_p95 and run.unanswered <= 0.05 * max(1, run.turns):
            best = run.n
    return best
