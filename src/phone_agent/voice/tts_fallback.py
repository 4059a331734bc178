"""Never a silent reply: when ElevenLabs fails, switch to the fallback voice and speak what is left.

Pipecat's ``ServiceSwitcher`` routes TTS work to one service at a time, but ElevenLabs errors
(a refused connection, a dropped socket) are reported as recoverable, so its failover strategy never
moves, and the sentence in flight is lost either way. ``TTSFailover`` sits just before the
switcher: it remembers the text of the reply being spoken and, on the first error the primary TTS
reports, switches to the fallback voice for the rest of the call and speaks the part of the reply
the primary had not voiced (known from the ``PlayoutTracker``).
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    ManuallySwitchServiceFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from phone_agent.ops import metrics
from phone_agent.voice.playout import PlayoutTracker


def unspoken_rest(full: str, spoken: str) -> str:
    """The words of ``full`` after the first ``len(spoken.split())`` words (all of it if none)."""
    words = full.split()
    done = len(spoken.split())
    if done and words[:done] != spoken.split():
        return full.strip()  # the primary spoke something else: say the whole reply again
    return " ".join(words[done:])


class TTSFailover(FrameProcessor):
    """Moves TTS to the fallback voice on the primary's first error and re-speaks the lost text."""

    def __init__(
        self, *, primary: FrameProcessor, fallback: FrameProcessor, tracker: PlayoutTracker, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._primary, self._fallback, self._tracker = primary, fallback, tracker
        self._reply: list[str] = []
        self.failed_over = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, (LLMFullResponseStartFrame, InterruptionFrame)):
                self._reply = []
            elif isinstance(frame, LLMTextFrame):
                self._reply.append(frame.text)
            elif isinstance(frame, TTSSpeakFrame):
                self._reply = [frame.text]
        elif isinstance(frame, ErrorFrame) and frame.processor is self._primary and not self.failed_over:
            await self._fail_over(frame)
        await self.push_frame(frame, direction)

    async def _fail_over(self, error: ErrorFrame) -> None:
        self.failed_over = True
        logger.warning("primary TTS failed ({}): switching to the fallback voice", error.error)
        metrics.provider_error("elevenlabs", "tts")
        metrics.fallback_used("tts", "fallback_voice")
        await self.push_frame(ManuallySwitchServiceFrame(service=self._fallback))
        rest = unspoken_rest("".join(self._reply), self._tracker.reply_text(heard_only=False))
        if rest:
            logger.info("re-speaking {} characters in the fallback voice", len(rest))
            await self.push_frame(TTSSpeakFrame(rest))
