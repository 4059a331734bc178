"""How busy this process is: calls in progress and how late its event loop runs.

Every process that takes calls has a capacity (``max_calls_per_worker``). A call beyond it, or any
new call while the event loop lags (``max_event_loop_lag_ms``: the running calls' audio would
stutter), is not taken: the caller gets the fallback action instead, and the running calls keep
real time. ``LoadMonitor.full_reason()`` says why a process is full, or None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

LAG_PROBE_SECONDS = 0.1  # how often the loop's lateness is sampled
LAG_SMOOTHING = 0.3  # weight of the newest sample in the moving average


class LoadMonitor:
    """Calls held by this process and the event loop's smoothed lateness."""

    def __init__(self, *, max_calls: int, max_lag_ms: float) -> None:
        self.max_calls = max_calls
        self.max_lag_ms = max_lag_ms
        self.calls = 0
        self.lag_ms = 0.0

    @contextmanager
    def call(self) -> Iterator[None]:
        """Count a call for as long as the block runs."""
        self.calls += 1
        try:
            yield
        finally:
            self.calls -= 1

    def full_reason(self) -> str | None:
        """Why a new call must not be taken now, or None."""
        if self.max_calls and self.calls >= self.max_calls:
            return f"at capacity ({self.calls} of {self.max_calls} calls)"
        if self.max_lag_ms and self.lag_ms > self.max_lag_ms:
            return f"event loop {self.lag_ms:.0f} ms late (limit {self.max_lag_ms:.0f} ms)"
        return None

    async def watch_lag(self) -> None:
        """Sample the event loop's lateness forever (run it as an owned background task)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            late_ms = max(0.0, (loop.time() - started - LAG_PROBE_SECONDS) * 1000)
            self.lag_ms = LAG_SMOOTHING * late_ms + (1 - LAG_SMOOTHING) * self.lag_ms
