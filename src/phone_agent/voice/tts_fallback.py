"""Never a silent reply: when ElevenLabs fails, switch to the fallback voice and speak what is left.

Pipecat's ``ServiceSwitcher`` routes TTS work to one service at a time, but ElevenLabs errors
(a refused connection, a dropped socket) are reported as recoverable, so its failover strategy never
moves, and the sentence in flight is lost either way. ``TTSFailover`` sits just before the
switcher: it remembers the text of the reply being spoken and, on the first error the primary TTS
reports, switches to the fallback voice for the rest of the call and speaks the part of the reply
the primary had not voiced (known from the ``PlayoutTracker``).

A voice that fails without a word counts too: a service that became unusable (a 401 at connect
is reported by the switcher, not the service), and one that was given text and sent no audio
within ``FIRST_AUDIO_SECS`` (a hung socket). When the fallback voice fails the same ways (or there
is none), ``on_exhausted`` is called: the call's last resort is Twilio's own ``<Say>`` through a
call update (``voice/rescue.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
from phone_agent.ops.provider_health import ProviderHealth, report_provider_error
from phone_agent.voice.playout import PlayoutTracker

FIRST_AUDIO_SECS = 1.0  # a voice given text that sends no audio by then has failed
# Piper synthesises a whole sentence on this machine's CPU before its first audio: a busy core can
# take seconds, and that is slow, not failed.
LOCAL_FIRST_AUDIO_SECS = 4.0


def unspoken_rest(full: str, spoken: str) -> str:
    """The words of ``full`` after the first ``len(spoken.split())`` words (all of it if none)."""
    words = full.split()
    done = len(spoken.split())
    if done and words[:done] != spoken.split():
        return full.strip()  # the primary spoke something else: say the whole reply again
    return " ".join(words[done:])


class TTSFailover(FrameProcessor):
    """Moves TTS to the fallback voice on the primary's first failure and re-speaks the lost text."""

    def __init__(
        self,
        *,
        primary: FrameProcessor,
        fallback: FrameProcessor | None,
        tracker: PlayoutTracker,
        on_exhausted: Callable[[str], Awaitable[None]] | None = None,
        health: ProviderHealth | None = None,
        first_audio_secs: float = FIRST_AUDIO_SECS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._primary, self._fallback, self._tracker = primary, fallback, tracker
        self._on_exhausted, self._health, self._first_audio_secs = on_exhausted, health, first_audio_secs
        self._reply: list[str] = []
        self._watchdog: asyncio.Task[None] | None = None
        self.failed_over = False
        self.exhausted = False

    @property
    def _active(self) -> FrameProcessor | None:
        return self._fallback if self.failed_over else self._primary

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, (LLMFullResponseStartFrame, InterruptionFrame)):
                self._reply = []
                self._stop_watchdog()
            elif isinstance(frame, LLMTextFrame):
                self._reply.append(frame.text)
                self._watch()
            elif isinstance(frame, TTSSpeakFrame):
                self._reply = [frame.text]
                self._watch()
        elif isinstance(frame, ErrorFrame) and self._active is not None:
            active = self._active
            if frame.processor is active or not active.is_usable:
                await self._voice_failed(frame.error)
        await self.push_frame(frame, direction)

    def _watch(self) -> None:
        """Expect audio from the voice in use within ``first_audio_secs`` of this text."""
        if self._watchdog is None and not self.exhausted:
            self._watchdog = self.create_task(self._expect_audio(self._tracker.sent_ms), name="tts-watchdog")

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _expect_audio(self, sent_before: float) -> None:
        await asyncio.sleep(self._first_audio_secs)
        self._watchdog = None
        if self._tracker.sent_ms <= sent_before:
            await self._voice_failed(f"no audio within {self._first_audio_secs} s")

    async def _voice_failed(self, error: str) -> None:
        self._stop_watchdog()
        if not self.failed_over and self._fallback is not None:
            await self._fail_over(self._fallback, error)
            self._watch()  # the fallback voice must answer in time too
        elif not self.exhausted:
            self.exhausted = True
            name = "elevenlabs" if not self.failed_over else "openai"
            report_provider_error(self._health, name, "tts", f"text-to-speech failed: {error}")
            logger.error("every voice failed ({}): Twilio's own voice is the last resort", error)
            if self._on_exhausted is not None:
                await self._on_exhausted(error)

    async def _fail_over(self, fallback: FrameProcessor, error: str) -> None:
        self.failed_over = True
        logger.warning("primary TTS failed ({}): switching to the fallback voice", error)
        report_provider_error(self._health, "elevenlabs", "tts", f"text-to-speech failed: {error}")
        metrics.fallback_used("tts", "fallback_voice")
        await self.push_frame(ManuallySwitchServiceFrame(service=fallback))
        rest = unspoken_rest("".join(self._reply), self._tracker.reply_text(heard_only=False))
        if rest:
            logger.info("re-speaking {} characters in the fallback voice", len(rest))
            await self.push_frame(TTSSpeakFrame(rest))

    async def cleanup(self) -> None:
        self._stop_watchdog()
        await super().cleanup()
