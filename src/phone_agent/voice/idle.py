"""Never dead air: after a silence the agent checks in; after a second one it says goodbye and
hangs up — once the goodbye has actually played on the phone (known from the mark echoes).

Silence is judged from the audio, not from transcripts: a caller whose speech VAD heard but whose
turn came out of STT empty was not silent, so they hear ``REPEAT_PROMPT`` (not "Are you still
there?"), and the silence count does not move. (A transcription provider that fails outright is
the STT ladder's business: voice/stt_ladder.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from loguru import logger

from phone_agent.voice.playout import PlayoutTracker

GOODBYE_PLAY_TIMEOUT_SECS = 30.0
REPEAT_PROMPT = "Sorry, I didn't catch that. Could you say it again?"


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
        on_unheard: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._on_unheard = on_unheard  # a turn the agent did not understand (routing rules count them)
        self._prompt, self._goodbye = prompt, goodbye
        self._tracker, self._speak, self._hang_up = tracker, speak, hang_up
        self.silences = 0
        self.unheard = False  # the caller's last speech (VAD) produced no transcript

    def caller_spoke(self) -> None:
        """The caller started talking (VAD): the next silence is the first again."""
        self.silences = 0
        self.unheard = True  # until a transcript says otherwise

    def caller_transcribed(self) -> None:
        """The caller's turn ended with words: they were heard."""
        self.unheard = False

    async def caller_silent(self) -> None:
        """The caller said nothing for the idle timeout after the agent finished speaking."""
        if self.unheard:  # they spoke, but nothing was transcribed: ask again, it was no silence
            self.unheard = False
            logger.info("caller spoke but was not transcribed: asking them to repeat")
            if self._on_unheard is not None and await self._on_unheard():
                return  # a routing rule took the call on: it says what happens now
            await self._speak(REPEAT_PROMPT)
            return
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
        await self._tracker.wait_until_played(since_ms=before, timeout=GOODBYE_PLAY_TIMEOUT_SECS)
        await self._hang_up("idle")
