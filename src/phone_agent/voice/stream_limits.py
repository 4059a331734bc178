"""What one Media Stream connection may send: message size, message rate and audio rate.

Twilio sends one ~200-400 byte JSON message every 20 ms (160 bytes of mu-law audio) plus the odd
``mark``/``dtmf``. A client sending far more than that is not Twilio; whatever it sends must not
cost other calls their latency. So, per connection:

- a message larger than ``MAX_MESSAGE_BYTES`` is dropped unread (``serve`` also sets uvicorn's
  ``ws_max_size`` to it, so such a frame closes the socket before it is buffered whole);
- messages beyond ``MESSAGES_PER_SECOND`` (bursts of ``MESSAGE_BURST``) are read only as fast as the
  budget refills: the receive loop waits, so the sender is held back by TCP, not by our CPU;
- audio beyond ``AUDIO_BYTES_PER_SECOND`` (2x real time, bursts of ``AUDIO_BURST_BYTES``) is dropped
  before it reaches VAD, turn detection and STT.

Dropped messages are counted and logged sparingly (the first few of each kind, then every
``LOG_EVERY``th), so a flood of junk cannot flood the log either.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from loguru import logger

MAX_MESSAGE_BYTES = 64 * 1024
MESSAGES_PER_SECOND = 200.0  # Twilio: 50 media a second plus marks and dtmf
MESSAGE_BURST = 400.0  # a network stall of several seconds arrives at once
TWILIO_AUDIO_BYTES_PER_SECOND = 8000  # 8 kHz mu-law
AUDIO_BYTES_PER_SECOND = 2.0 * TWILIO_AUDIO_BYTES_PER_SECOND
AUDIO_BURST_BYTES = 10.0 * TWILIO_AUDIO_BYTES_PER_SECOND
LOGGED_PER_KIND = 3
LOG_EVERY = 1000


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` if it is there."""
        self._refill()
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def wait_for(self, amount: float = 1.0) -> float:
        """Spend ``amount`` now (going into debt); seconds to wait before the debt is paid."""
        self._refill()
        self._tokens -= amount
        return max(0.0, -self._tokens / self.rate)


class StreamLimits:
    """The budget of one Media Stream connection (see the module docstring)."""

    def __init__(
        self,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        messages_per_second: float = MESSAGES_PER_SECOND,
        message_burst: float = MESSAGE_BURST,
        audio_bytes_per_second: float = AUDIO_BYTES_PER_SECOND,
        audio_burst_bytes: float = AUDIO_BURST_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self._messages = TokenBucket(messages_per_second, message_burst, clock)
        self._audio = TokenBucket(audio_bytes_per_second, audio_burst_bytes, clock)
        self._sleep = sleep
        self.ignored: Counter[str] = Counter()
        self.waited_seconds = 0.0

    async def pace(self) -> None:
        """Wait until this connection may have its next message read."""
        wait = self._messages.wait_for()
        if wait > 0:
            self.waited_seconds += wait
            await self._sleep(wait)  # type: ignore[misc]

    def size_ok(self, data: str | bytes) -> bool:
        """False (counted) for a message above ``max_message_bytes``."""
        # a str's length in characters is a lower bound of its UTF-8 size; good enough to refuse
        if len(data) > self.max_message_bytes:
            self.ignore("oversize", f"{len(data)} bytes")
            return False
        return True

    def audio_ok(self, audio_bytes: int) -> bool:
        """False (counted) when this audio would exceed the connection's audio rate."""
        if self._audio.take(audio_bytes):
            return True
        self.ignore("audio over the rate", f"{audio_bytes} bytes")
        return False

    def ignore(self, kind: str, detail: str = "") -> None:
        """Count one ignored message; log the first few of each kind, then every ``LOG_EVERY``th."""
        self.ignored[kind] += 1
        count = self.ignored[kind]
        if count <= LOGGED_PER_KIND or count % LOG_EVERY == 0:
            suffix = f" ({detail})" if detail else ""
            logger.warning("media stream: ignoring {}{} [{} so far]", kind, suffix, count)

    def summary(self) -> str:
        """What was ignored on this connection, e.g. ``oversize=3, not JSON=12`` (empty: nothing)."""
        return ", ".join(f"{kind}={count}" for kind, count in sorted(self.ignored.items()))
