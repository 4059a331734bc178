"""Max call length: after ``max_call_seconds`` the agent says ``max_call_wrap_up``, and once that has
played the call goes to the fallback action (``telephony/fallback.py``: a transfer or a voicemail)
or is hung up (``max_call_action``). The call's row says why it ended (``max_length → voicemail``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger

from phone_agent.brain.tools import ToolContext
from phone_agent.config import Settings
from phone_agent.errors import PhoneAgentError
from phone_agent.tasks import TaskOwner
from phone_agent.telephony.control import CallControl
from phone_agent.telephony.fallback import fallback_twiml, resolved_fallback_action

MAX_LENGTH = "max_length"


class CallTimer:
    """Ends one call gracefully at ``max_call_seconds`` (no timer when it is 0)."""

    def __init__(
        self,
        *,
        settings: Settings,
        control: CallControl,
        call_sid: str,
        tools: ToolContext,
        speak: Callable[[str], Awaitable[None]],
        before_redirect: Callable[[str], Awaitable[None]],
        hang_up: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings, self.control, self.call_sid, self.tools = settings, control, call_sid, tools
        self.speak, self.before_redirect, self.hang_up = speak, before_redirect, hang_up
        self._task: asyncio.Task[None] | None = None
        self.expired = False

    def start(self, tasks: TaskOwner) -> None:
        """Start counting (the call has begun)."""
        if self.settings.max_call_seconds > 0 and self._task is None:
            self._task = tasks.spawn(self._run(), name=f"max-length-{self.call_sid}")

    def cancel(self) -> None:
        """The call ended first."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        await asyncio.sleep(self.settings.max_call_seconds)
        if self.tools.pending_action():  # already leaving (a transfer, a goodbye): let that happen
            return
        self.expired = True
        logger.info("call reached max_call_seconds ({} s): wrapping up", self.settings.max_call_seconds)
        self.tools.ended, self.tools.end_reason = True, MAX_LENGTH
        self.tools.after_speech(self._after_wrap_up, MAX_LENGTH)
        await self.speak(self.settings.max_call_wrap_up)

    async def _after_wrap_up(self) -> None:
        settings = self.settings
        action = "hang_up" if settings.max_call_action == "hang_up" else resolved_fallback_action(settings)
        if action == "hang_up":
            await self.hang_up(MAX_LENGTH)
            return
        reason = f"{MAX_LENGTH} → {action}"
        try:
            await self.before_redirect(reason)
            twiml = fallback_twiml(settings, apology="", reason="the call reached its time limit")
            await self.control.update_twiml(self.call_sid, twiml)
        except PhoneAgentError as exc:
            logger.error("max call length: the call cannot be handed on ({}): hanging up", exc)
            await self.hang_up(MAX_LENGTH)
