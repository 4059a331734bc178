"""The last rung of every ladder: one apology, then the fallback action, and a record of both.

When a stage of a live call has no provider left (STT, LLM, TTS, realtime without a pipeline to
fall back on), the caller must get somewhere rather than hear silence or the same canned line
again. ``CallRescue.give_up(stage, detail)`` runs at most once per call:

1. the apology (``APOLOGY``) is said in the agent's voice while that voice still works: it must
   start within ``APOLOGY_START_SECS`` (else Twilio's ``<Say>`` says it instead) and is heard to
   its end before the call moves on;
2. the call is redirected through Twilio's REST API to ``fallback_twiml`` (transfer to the handoff
   number, voicemail with transcription, or hang-up: ``telephony.fallback``). That ends the media
   stream; the pipeline then ends without hanging up (``keep_call_up``);
3. the call's end reason says what failed and what the caller got: ``stt_failed → voicemail``
   (``end_reason_for``), queryable as ``calls.end_reason LIKE '%_failed → %'``.

When Twilio cannot be reached (no credentials, REST failing) all that is left is the apology and a
hang-up (``stt_failed → hang_up``); so it is for a web call (the admin softphone: ``control`` None),
which has no telephone leg to redirect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from loguru import logger

from phone_agent.config import Settings
from phone_agent.errors import PhoneAgentError
from phone_agent.ops.provider_health import ProviderHealth, report_provider_error
from phone_agent.telephony.control import CallControl
from phone_agent.telephony.fallback import fallback_twiml, resolved_fallback_action
from phone_agent.voice.playout import PlayoutTracker

APOLOGY = "I'm sorry, I'm having trouble on my end right now."
APOLOGY_START_SECS = 0.8  # our voice must have started by then, or Twilio's <Say> takes over
APOLOGY_PLAY_SECS = 8.0  # longest wait for the apology to be heard before the call moves on


def end_reason_for(stage: str, action: str) -> str:
    """The call's end reason after a ladder ran out: ``<stage>_failed → <action>``."""
    return f"{stage}_failed → {action}"


class CallRescue:
    """Gives up on a call's provider stage once: apology, fallback TwiML, end reason."""

    def __init__(
        self,
        *,
        settings: Settings,
        control: CallControl | None,
        call_sid: str,
        tracker: PlayoutTracker,
        speak: Callable[[str], Awaitable[None]],
        end_pipeline: Callable[[str], Awaitable[None]],
        keep_call_up: Callable[[], None],
        health: ProviderHealth | None = None,
    ) -> None:
        self._settings, self._control, self._call_sid = settings, control, call_sid
        self._tracker, self._speak, self._end_pipeline = tracker, speak, end_pipeline
        self._keep_call_up, self._health = keep_call_up, health
        self.end_reason: str | None = None  # set once give_up has started
        self.apology_spoken_by: str | None = None  # "agent" | "twilio" | None

    @property
    def started(self) -> bool:
        """True once the call is being handed to the fallback action."""
        return self.end_reason is not None

    async def give_up(
        self, stage: str, detail: str, *, voice_works: bool = True, apology_since_ms: float | None = None
    ) -> None:
        """Apologise once and hand the call to the fallback action (later calls do nothing).

        Args:
            stage: the stage whose ladder ran out (``stt``, ``llm``, ``tts``, ``realtime``).
            detail: what failed, for the log (no secret).
            voice_works: False when the agent's own voice is what failed (Twilio says the apology).
            apology_since_ms: the apology is already on its way in the agent's voice (e.g. the LLM's
                last-resort reply), queued when ``tracker.sent_ms`` was this: wait for it, don't say it.
        """
        if self.started:
            return
        action = resolved_fallback_action(self._settings) if self._control is not None else "hang_up"
        self.end_reason = end_reason_for(stage, action)
        logger.error("{} ladder exhausted ({}): apology, then {}", stage, detail, action)
        spoken = await self._apologise(voice_works, apology_since_ms)
        self.apology_spoken_by = "agent" if spoken else "twilio"
        if self._control is None:  # no telephone leg (a web call): the apology, then the end
            self.apology_spoken_by = "agent" if spoken else None
            await self._end_pipeline(self.end_reason)
            return
        twiml = fallback_twiml(self._settings, apology="" if spoken else APOLOGY, reason=f"{stage} failed")
        try:
            self._keep_call_up()
            await self._control.update_twiml(self._call_sid, twiml)
        except PhoneAgentError as exc:  # Twilio unreachable or not configured: nothing left but a hang-up
            report_provider_error(self._health, "twilio", "update_failed", str(exc))
            self.end_reason = end_reason_for(stage, "hang_up")
            self.apology_spoken_by = "agent" if spoken else None
            logger.error("fallback action failed ({}): hanging up", exc)
            await self._end_pipeline(self.end_reason)
            return
        await self._end_pipeline(self.end_reason)

    async def _apologise(self, voice_works: bool, since_ms: float | None) -> bool:
        """Say the apology in the agent's voice; True once it has been heard, False to leave it to Twilio."""
        if not voice_works:
            return False
        if since_ms is None:
            since_ms = self._tracker.sent_ms
            await self._speak(APOLOGY)
        started_by = time.monotonic() + APOLOGY_START_SECS
        while self._tracker.sent_ms <= since_ms:
            if time.monotonic() >= started_by:
                logger.warning("the agent's voice did not start the apology: Twilio will say it")
                return False
            await asyncio.sleep(0.02)
        await self._tracker.wait_until_played(since_ms=since_ms, timeout=APOLOGY_PLAY_SECS)
        return True  # begun in the agent's voice: never said twice
