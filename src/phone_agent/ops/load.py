"""How busy this process is: calls in progress and how late its event loop runs.

Every process that takes calls has a capacity (``max_calls_per_worker``). A call beyond it, or any
new call while the event loop lags (``max_event_loop_lag_ms``: the running calls' audio would
stutter), is not taken: the caller gets the fallback action instead, and the running calls keep
real time. ``LoadMonitor.full_reason()`` says why a process is full, or None.

A call counts from the moment ``/phone/incoming`` answers it with a stream (``reserve``), not only
once its stream has started a second or more later: a burst of calls cannot all slip in while the
first streams are still opening. A reservation whose stream never comes lapses after
``RESERVATION_SECONDS``.

The lag is what an operator needs to see whether a process keeps real time: every sample goes to
the ``phone_agent_event_loop_lag_seconds`` histogram (``/metrics``), and ``status()`` (the ``load``
section of ``/admin-status``) gives the smoothed lag shedding uses and the worst of the last
minute: a single stall (a synchronous parse, a burst of work) that the smoothed value averages
away. The histogram tells the two kinds of lateness apart: a saturated process has many probes a
little late, a stalling one a few probes very late.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from phone_agent.ops import metrics

LAG_PROBE_SECONDS = 0.1  # how often the loop's lateness is sampled
LAG_SMOOTHING = 0.3  # weight of the newest sample in the moving average
RESERVATION_SECONDS = 15.0  # Twilio opens the stream within a few seconds of the webhook's answer
WORST_LAG_WINDOW_SECONDS = 60.0  # the worst lag reported is that of the last minute


class LoadMonitor:
    """Calls held by this process and the event loop's smoothed lateness."""

    def __init__(self, *, max_calls: int, max_lag_ms: float) -> None:
        self.max_calls = max_calls
        self.max_lag_ms = max_lag_ms
        self.calls = 0
        self.ended = 0  # calls that have ended in this process
        self._ended_at = time.monotonic()
        self.lag_ms = 0.0
        self._reserved: dict[str, float] = {}  # call SID → when its reservation lapses (monotonic)
        self._recent_lags: deque[tuple[float, float]] = deque()  # (monotonic, ms) of the last minute

    def reserve(self, call_sid: str) -> None:
        """``/phone/incoming`` took the call: it counts until its stream starts (or this lapses)."""
        self._reserved[call_sid] = time.monotonic() + RESERVATION_SECONDS

    def release(self, call_sid: str) -> None:
        """The reserved call will not run here after all (handed over at its stream's start)."""
        self._reserved.pop(call_sid, None)

    def reserved(self, *, exclude: str | None = None) -> int:
        """Calls answered with a stream whose stream has not started yet (``exclude``: not this one)."""
        now = time.monotonic()
        for sid in [sid for sid, until in self._reserved.items() if until <= now]:
            del self._reserved[sid]
        return sum(1 for sid in self._reserved if sid != exclude)

    @contextmanager
    def call(self, call_sid: str | None = None) -> Iterator[None]:
        """Count a call for as long as the block runs (its reservation, if any, becomes the call)."""
        if call_sid is not None:
            self.release(call_sid)
        self.calls += 1
        try:
            yield
        finally:
            self.calls -= 1
            self.ended += 1
            self._ended_at = time.monotonic()

    def since_last_call_ended(self) -> float:
        """Seconds since the last call ended (since this monitor was made, before any call)."""
        return time.monotonic() - self._ended_at

    def full_reason(self, *, exclude: str | None = None) -> str | None:
        """Why a new call must not be taken now, or None (``exclude``: the call asking, if reserved)."""
        taken = self.calls + self.reserved(exclude=exclude)
        if self.max_calls and taken >= self.max_calls:
            return f"at capacity ({taken} of {self.max_calls} calls)"
        if self.max_lag_ms and self.lag_ms > self.max_lag_ms:
            return f"event loop {self.lag_ms:.0f} ms late (limit {self.max_lag_ms:.0f} ms)"
        return None

    async def watch_lag(self) -> None:
        """Sample the event loop's lateness forever (run it as an owned background task)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self.record_lag(max(0.0, (loop.time() - started - LAG_PROBE_SECONDS) * 1000))

    def record_lag(self, late_ms: float) -> None:
        """One sample: the probe's timer ran ``late_ms`` late."""
        self.lag_ms = LAG_SMOOTHING * late_ms + (1 - LAG_SMOOTHING) * self.lag_ms
        metrics.event_loop_lag(late_ms / 1000, self.lag_ms / 1000)
        now = time.monotonic()
        self._recent_lags.append((now, late_ms))
        while self._recent_lags and self._recent_lags[0][0] < now - WORST_LAG_WINDOW_SECONDS:
            self._recent_lags.popleft()

    def worst_lag_ms(self) -> float:
        """The worst lag (ms) of the last ``WORST_LAG_WINDOW_SECONDS`` (0 without a sample)."""
        since = time.monotonic() - WORST_LAG_WINDOW_SECONDS
        return max((ms for at, ms in self._recent_lags if at >= since), default=0.0)

    def status(self) -> dict[str, Any]:
        """This process's load for ``/admin-status``: calls, capacity, lag, and whether it is full."""
        return {
            "calls": self.calls,
            "reserved": self.reserved(),
            "max_calls": self.max_calls or None,
            "event_loop_lag_ms": round(self.lag_ms, 1),
            "worst_lag_last_minute_ms": round(self.worst_lag_ms(), 1),
            "max_event_loop_lag_ms": self.max_lag_ms or None,
            "full": self.full_reason(),
        }
