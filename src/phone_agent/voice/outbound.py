"""An outbound call in the pipeline: quiet until the answering-machine verdict, then greet or leave
a voicemail.

Twilio connects the Media Stream as soon as the callee picks up, while its answering-machine
detection runs (``AsyncAmd``). Until the verdict, ``AnswerGate`` holds the callee's audio back from
VAD and STT (a person's "Hello?" or a machine's greeting must not start a turn) and the agent says
nothing. The verdict arrives over the control bus (``answered_by`` command, sent by
``/phone/outbound/amd``) or, should that be missed, from the database, polled each second:

- a person (``human``), or no verdict (``unknown``, or none within ``VERDICT_WAIT_SECS``): the gate
  opens and the agent speaks the outbound greeting; the LLM knows the purpose (``outbound_brief``);
- a machine (``machine_end_*``: Twilio reports it once the greeting ended, at the beep): the
  voicemail message is spoken, and the call is hung up once it has played;
- a fax: hung up at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.brain.persona import outbound_brief, outbound_greeting_for, voicemail_for
from phone_agent.config import Settings
from phone_agent.storage.outbound import outbound_by_sid
from phone_agent.telephony.outbound import AMD_TIMEOUT_SECONDS, is_machine
from phone_agent.voice.playout import PlayoutTracker

VERDICT_WAIT_SECS = AMD_TIMEOUT_SECONDS + 5.0  # Twilio answers by its timeout (``unknown`` at worst)
POLL_SECS = 1.0
VOICEMAIL_PLAY_TIMEOUT_SECS = 90.0


class AnswerGate(FrameProcessor):
    """Drops the callee's audio until ``open()`` (placed right after the transport's input)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.is_open = False

    def open(self) -> None:
        """Let the callee's audio through from now on."""
        self.is_open = True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not self.is_open and isinstance(frame, InputAudioRawFrame):
            return
        await self.push_frame(frame, direction)


@dataclass(frozen=True)
class OutboundPlan:
    """What an outbound call says, from its stored purpose."""

    purpose: str
    greeting: str
    voicemail: str
    brief: str


async def outbound_plan(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], call_sid: str, callee_name: str | None
) -> OutboundPlan:
    """The greeting, voicemail and LLM brief of the outbound call ``call_sid``."""
    view = await outbound_by_sid(sessions, call_sid)
    purpose = view.purpose if view else "a call from the business"
    return OutboundPlan(
        purpose=purpose,
        greeting=outbound_greeting_for(settings, purpose, callee_name),
        voicemail=voicemail_for(settings, purpose, callee_name),
        brief=outbound_brief(purpose, callee_name),
    )


class OutboundAnswer:
    """Waits for the answering-machine verdict, then greets a person or leaves a voicemail."""

    def __init__(
        self,
        *,
        plan: OutboundPlan,
        sessions: async_sessionmaker[AsyncSession],
        call_sid: str,
        gate: AnswerGate,
        tracker: PlayoutTracker,
        speak: Callable[[str], Awaitable[None]],
        hang_up: Callable[[str], Awaitable[None]],
    ) -> None:
        self.plan, self._sessions, self._call_sid = plan, sessions, call_sid
        self._gate, self._tracker, self._speak, self._hang_up = gate, tracker, speak, hang_up
        self._verdict: str | None = None
        self._arrived = asyncio.Event()
        self.answered_by: str | None = None  # the verdict acted on
        self._task: asyncio.Task[Any] | None = None

    def verdict_received(self, answered_by: str) -> None:
        """The verdict, from the control bus."""
        self._verdict = answered_by or "unknown"
        self._arrived.set()

    def close(self) -> None:
        """The call ended (the callee hung up while we waited): stop waiting."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> None:
        """Wait for the verdict and act on it (run as the call's task once the stream is up)."""
        self._task = asyncio.current_task()
        started = time.monotonic()
        self.answered_by = await self._wait_for_verdict()
        logger.info(
            "outbound call answered by {} ({:.1f} s after the stream started)",
            self.answered_by,
            time.monotonic() - started,
        )
        if is_machine(self.answered_by):
            before = self._tracker.sent_ms
            await self._speak(self.plan.voicemail)
            await self._tracker.wait_until_played(since_ms=before, timeout=VOICEMAIL_PLAY_TIMEOUT_SECS)
            await self._hang_up("voicemail_left")
        elif self.answered_by == "fax":
            await self._hang_up("fax")
        else:
            self._gate.open()
            await self._speak(self.plan.greeting)

    async def _wait_for_verdict(self) -> str:
        deadline = time.monotonic() + VERDICT_WAIT_SECS
        while True:
            if self._verdict is not None:
                return self._verdict
            view = await outbound_by_sid(self._sessions, self._call_sid)
            if view is not None and view.answered_by:
                return view.answered_by
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.warning(
                    "no answering-machine verdict in {:.0f} s: greeting as a person", VERDICT_WAIT_SECS
                )
                return "unknown"
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, POLL_SECS))
            except TimeoutError:
                pass
