"""Never dead air: after a silence the agent checks in; after a second one it says goodbye and
hangs up — once the goodbye has actually played on the phone (known from the mark echoes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from loguru import logger

from phone_agent.voice.playout import PlayoutTracker

GOODBYE_PLAY_TIMEOUT_SECS = 30.0
QUIET_AFTER_GOODBYE_SECS = 0.3


class IdleCaller:
    """Counts silences since the caller last spoke and decides what the agent does about them."""

    def __init__(
        self,
        *,
        prompt: str,
        goodbye: str,
        tracker: PlayoutTracker,
        speak: Callable[[str], Awaitable[None]],
        hang_up: Callable[[str], Awaitable[None]],
    ) -> None:
        self._prompt, self._goodbye = prompt, goodbye
        self._tracker, self._speak, self._hang_up = tracker, speak, hang_up
        self.silences = 0

    def caller_spoke(self) -> None:
        """The caller started talking: the next silence is the first again."""
        self.silences = 0

    async def caller_silent(self) -> None:
        """The caller said nothing for the idle timeout after the agent finished speaking."""
        self.silences += 1
        if self.silences == 1:
            logger.info("caller silent: checking in")
            await self._speak(self._prompt)
            return
        if self.silences > 2:
            return  # already saying goodbye
        logger.info("caller silent again: saying goodbye and hanging up")
        before = self._tracker.sent_ms
        await self._speak(self._goodbye)
        await wait_until_played(self._tracker, since_ms=before, timeout=GOODBYE_PLAY_TIMEOUT_SECS)
        await self._hang_up("idle")


async def wait_until_played(tracker: PlayoutTracker, *, since_ms: float, timeout: float) -> bool:  # noqa: ASYNC109
    """Wait until agent audio sent after ``since_ms`` has all been played by the phone."""
    deadline = time.monotonic() + timeout
    last_sent, steady_since = tracker.sent_ms, time.monotonic()
    while time.monotonic() < deadline:
        if tracker.sent_ms != last_sent:
            last_sent, steady_since = tracker.sent_ms, time.monotonic()
        done = tracker.sent_ms > since_ms and tracker.played_ms >= tracker.sent_ms - 1
        if done and time.monotonic() - steady_since >= QUIET_AFTER_GOODBYE_SECS:
            return True
        await asyncio.sleep(0.05)
    logger.warning("gave up waiting for the phone to play the last words")
    return False
