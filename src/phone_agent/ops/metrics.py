"""Prometheus metrics, and the functions the call path calls to feed them. ``GET /metrics`` exposes them.

The voice and brain code call, e.g.::

    metrics.call_started("inbound")          # when a media stream starts
    metrics.observe_turn(turn.marks)         # once per agent turn (marks in ms, see CallTurn)
    metrics.provider_error("elevenlabs", "timeout")
    metrics.fallback_used("tts", "openai")
    metrics.call_ended("completed")

Each process exposes its own counters (the voice bridge has the call metrics, the orchestrator the
webhooks); Prometheus scrapes every role. /metrics answers the admin status token, or loopback
clients when none is set (the route is ``api/metrics.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# stage -> (start mark, end mark); marks are ms since the call started (storage/tables.py CallTurn)
TURN_STAGES: dict[str, tuple[str, str]] = {
    "stt": ("caller_stopped", "stt_final"),
    "llm": ("stt_final", "llm_first_token"),
    "tts": ("llm_first_token", "tts_first_audio"),
    "send": ("tts_first_audio", "first_audio_sent"),
    "voice_to_voice": ("caller_stopped", "first_audio_sent"),
}
# seconds: fine below a second where turn latency lives, coarse above
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)

REGISTRY = CollectorRegistry(auto_describe=True)

CALLS_ACTIVE = Gauge("phone_agent_calls_active", "Calls in progress in this process.", registry=REGISTRY)
CALLS_TOTAL = Counter("phone_agent_calls", "Calls started, by direction.", ["direction"], registry=REGISTRY)
CALLS_ENDED = Counter("phone_agent_calls_ended", "Calls ended, by end reason.", ["reason"], registry=REGISTRY)
TURN_LATENCY = Histogram(
    "phone_agent_turn_stage_seconds",
    "Latency of each stage of an agent turn (voice_to_voice = caller stopped to first audio sent).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "phone_agent_provider_errors",
    "Errors from external providers, by provider and kind.",
    ["provider", "kind"],
    registry=REGISTRY,
)
CALLS_REFUSED = Counter(
    "phone_agent_calls_refused",
    "Calls given the fallback action instead of the agent, by reason (overflow, not_configured).",
    ["reason"],
    registry=REGISTRY,
)
FALLBACKS = Counter(
    "phone_agent_fallbacks",
    "Fallbacks used, by component (llm, tts, stt) and the fallback that took over.",
    ["component", "to"],
    registry=REGISTRY,
)
# seconds a 100 ms timer of the event loop ran late: under 5 ms is a loop keeping real time (a
# caller's audio frame is 20 ms), 50 ms and more is audio that stutters
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
EVENT_LOOP_LAG = Histogram(
    "phone_agent_event_loop_lag_seconds",
    "How late this process's event loop ran a 100 ms timer (sampled ten times a second).",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
EVENT_LOOP_LAG_SMOOTHED = Gauge(
    "phone_agent_event_loop_lag_smoothed_seconds",
    "The event loop's smoothed lateness, as new calls are refused on (max_event_loop_lag_ms).",
    registry=REGISTRY,
)


def call_started(direction: str = "inbound") -> None:
    """A call began in this process."""
    CALLS_TOTAL.labels(direction=direction).inc()
    CALLS_ACTIVE.inc()


def call_refused(reason: str) -> None:
    """A call was not taken by the agent (the caller got the fallback action)."""
    CALLS_REFUSED.labels(reason=reason).inc()


def call_ended(reason: str = "completed") -> None:
    """A call that `call_started` counted has ended."""
    CALLS_ACTIVE.dec()
    CALLS_ENDED.labels(reason=reason or "unknown").inc()


def observe_turn(marks: Mapping[str, Any]) -> dict[str, float]:
    """Record the stage latencies of one turn from its timing marks (ms); returns them in seconds.

    Stages whose marks are missing (e.g. no STT in realtime mode) or out of order are skipped.
    """
    observed: dict[str, float] = {}
    for stage, (start, end) in TURN_STAGES.items():
        a, b = marks.get(start), marks.get(end)
        if isinstance(a, int | float) and isinstance(b, int | float) and b >= a:
            seconds = (b - a) / 1000.0
            TURN_LATENCY.labels(stage=stage).observe(seconds)
            observed[stage] = seconds
    return observed


def provider_error(provider: str, kind: str = "error") -> None:
    """A provider call failed (kind: timeout, http_5xx, auth, dropped, ...)."""
    PROVIDER_ERRORS.labels(provider=provider, kind=kind).inc()


def fallback_used(component: str, to: str) -> None:
    """A fallback took over (component llm/tts/stt; ``to`` names the fallback)."""
    FALLBACKS.labels(component=component, to=to).inc()


def event_loop_lag(late: float, smoothed: float) -> None:
    """One sample of the event loop's lateness (seconds), and the smoothed value after it."""
    EVENT_LOOP_LAG.observe(late)
    EVENT_LOOP_LAG_SMOOTHED.set(smoothed)


def exposition() -> bytes:
    """The Prometheus text exposition of this process's metrics."""
    return generate_latest(REGISTRY)
