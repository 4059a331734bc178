"""Routing rules inside a live call: every sentence, intent, key press and misunderstanding.

``CallRouter`` holds the call's enabled rules (read once when the call starts) and runs the ones that
fire (``brain.routing.match.event_matches``): each at most once per call, each noted on the call's
row. A terminal action (transfer, voicemail, hang up) is announced in one line, then carried out
once that line has played (``ToolContext.after_speech``): Twilio takes the call on with the
action's TwiML, or the agent hangs up. Non-terminal actions tag the call, send an SMS or switch the
agent's instructions for the rest of the call.

Two processors feed it: ``DigitGate`` right after the transport (Twilio's ``dtmf`` messages arrive as
``InputDTMFFrame``), ``SentenceGate`` between the user aggregator and the LLM (a sentence that
fires a terminal rule does not reach the LLM). The ``route_call`` tool reports intents
(``brain.routing.tool``); the idle watcher reports speech that STT could not transcribe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, InputDTMFFrame, LLMContextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.brain.routing.actions import action_twiml, send_rule_sms, spoken_line, transfer_reason
from phone_agent.brain.routing.incoming import CallRouting
from phone_agent.brain.routing.match import CallEvent, CallFacts, event_matches
from phone_agent.brain.routing.rules import UNCLEAR, Rule
from phone_agent.brain.tools import ToolContext
from phone_agent.config import Settings
from phone_agent.errors import PhoneAgentError
from phone_agent.services import Services
from phone_agent.storage.routing import record_routing
from phone_agent.storage.tables import utcnow
from phone_agent.telephony.control import CallControl
from phone_agent.voice.stream import StreamStart

Speak = Callable[[str], Awaitable[None]]


class CallRouter:
    """One call's in-call routing (see the module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        control: CallControl,
        rules: list[Rule],
        call_sid: str,
        caller: str | None,
        returning: bool,
        tools: ToolContext,
        speak: Speak,
        before_redirect: Callable[[str], Awaitable[None]],
        hang_up: Callable[[str], Awaitable[None]],
        set_instructions: Callable[[str], None],
    ) -> None:
        self.settings, self.sessions, self.control = settings, sessions, control
        self.rules = [r for r in rules if r.enabled and r.conditions.in_call()]
        self.call_sid, self.caller, self.returning = call_sid, caller, returning
        self.tools, self.speak = tools, speak
        self.before_redirect, self.hang_up, self.set_instructions = before_redirect, hang_up, set_instructions
        self.fired: list[int] = []
        self.misunderstood = 0
        self.taken: Rule | None = None  # the terminal rule that took the call, once one did

    # -- events -----------------------------------------------------------------------------------
    async def on_sentence(self, text: str) -> bool:
        """A caller's sentence; True when a terminal rule took the call (the LLM must not answer)."""
        return await self._run(CallEvent("text", text), f"caller said “{text[:120]}”", announce=True)

    async def on_digit(self, digit: str) -> None:
        """The caller pressed a key."""
        await self._run(CallEvent("digit", digit), f"caller pressed {digit}", announce=True)

    async def on_misunderstood(self) -> bool:
        """One more turn the agent did not understand; True when a terminal rule took the call."""
        self.misunderstood += 1
        event = CallEvent("misunderstood", count=self.misunderstood)
        return await self._run(event, f"not understood {self.misunderstood} times", announce=True)

    async def on_intent(self, intent: str) -> dict[str, Any]:
        """The LLM recognised an intent (``route_call``): the tool's result (the LLM says the line)."""
        if " ".join(intent.lower().split()) == UNCLEAR:
            await self.on_misunderstood()
            if self.taken is None:
                return {"status": "noted", "say": "Ask the caller, kindly, to say it another way."}
            return {"status": "routing", "say": "Say nothing more; the call is being passed on."}
        taken = await self._run(CallEvent("intent", intent), f"caller wants to {intent}", announce=False)
        if taken and self.taken is not None:
            line = (
                spoken_line(self.settings, self.taken)
                or "Tell the caller, in one sentence, what happens now."
            )
            return {"status": "routing", "say": f"Say exactly this and nothing else: {line}"}
        return {"status": "noted", "say": "Carry on helping the caller."}

    # -- running rules ----------------------------------------------------------------------------
    async def _run(self, event: CallEvent, detail: str, *, announce: bool) -> bool:
        if self.taken is not None or not self.rules:
            return self.taken is not None
        facts = CallFacts(now=utcnow(), caller=self.caller, returning=self.returning)
        for rule in event_matches(self.rules, self.settings, facts, event, already=self.fired):
            self.fired.append(rule.id)
            await self._fire(rule, detail, announce=announce)
        return self.taken is not None

    async def _fire(self, rule: Rule, detail: str, *, announce: bool) -> None:
        action = rule.action
        logger.info("routing rule {!r} fired in the call: {}", rule.name, action.summary())
        terminal = f"routed → {action.type}" if action.terminal else None
        try:
            await record_routing(
                self.sessions,
                call_sid=self.call_sid,
                event=rule.event("call", detail),
                tag=action.tag if action.type == "tag" else None,
                end_reason=terminal,
            )
        except Exception as exc:  # the record must not stop the action the caller is waiting for
            logger.error("routing rule {!r} not recorded: {}", rule.name, type(exc).__name__)
        if action.type == "sms":
            await send_rule_sms(self.settings, self.control, rule, self.caller)
        elif action.type == "persona":
            self.set_instructions(action.text)
        elif action.terminal:
            self.taken = rule
            self.tools.ended, self.tools.end_reason = True, terminal
            line = spoken_line(self.settings, rule)
            self.tools.after_speech(lambda: self._carry_out(rule, detail), f"routing-{rule.id}")
            if announce:
                if line:
                    await self.speak(line)
                else:  # nothing to say: act at once
                    await self.tools.speech_finished()

    async def _carry_out(self, rule: Rule, detail: str) -> None:
        """The line has played: hand the call to Twilio with the action's TwiML, or hang up."""
        reason = f"routed → {rule.action.type}"
        if rule.action.type == "hang_up":
            await self.hang_up(reason)
            return
        twiml = action_twiml(self.settings, rule, reason=transfer_reason(rule, detail), in_call=True)
        try:
            await self.before_redirect(reason)
            await self.control.update_twiml(self.call_sid, twiml)
        except PhoneAgentError as exc:  # Twilio cannot take it: end the call rather than leave it mute
            logger.error("routing rule {!r} could not redirect the call: {}", rule.name, exc)
            await self.hang_up(f"{reason} failed")


def call_router(
    settings: Settings,
    services: Services,
    start: StreamStart,
    routing: CallRouting,
    tools: ToolContext,
    *,
    speak: Speak,
    before_redirect: Callable[[str], Awaitable[None]],
    hang_up: Callable[[str], Awaitable[None]],
    set_instructions: Callable[[str], None],
) -> CallRouter:
    """The call's ``CallRouter``, also told the intents the ``route_call`` tool reports.

    Args:
        settings: the call's settings (realtime mode passes a copy with a persona's instructions).
        speak, before_redirect, hang_up, set_instructions: how this kind of call (pipeline or
            realtime) says a line, hands the call to Twilio, hangs up and switches instructions.
    """
    router = CallRouter(
        settings=settings,
        sessions=services.sessions,
        control=services.control,
        rules=routing.rules,
        call_sid=start.call_sid,
        caller=start.caller,
        returning=routing.returning,
        tools=tools,
        speak=speak,
        before_redirect=before_redirect,
        hang_up=hang_up,
        set_instructions=set_instructions,
    )
    tools.on_intent = router.on_intent
    return router


class DigitGate(FrameProcessor):
    """Passes every frame on; a key press (``InputDTMFFrame``) goes to the router."""

    def __init__(self, router: CallRouter) -> None:
        super().__init__()
        self.router = router

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame):
            digit = str(frame.button.value)
            logger.info("caller pressed {}", digit)
            self.create_task(self.router.on_digit(digit), name="routing-digit")
        await self.push_frame(frame, direction)


class SentenceGate(FrameProcessor):
    """Shows each new caller sentence to the router before the LLM; keeps it from the LLM when a
    terminal rule took the call."""

    def __init__(self, router: CallRouter) -> None:
        super().__init__()
        self.router = router
        self._seen: tuple[int, str] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            users = [
                m for m in frame.context.get_messages() if isinstance(m, dict) and m.get("role") == "user"
            ]
            text = _text(users[-1].get("content")) if users else ""
            if text and (len(users), text) != self._seen:
                self._seen = (len(users), text)
                if await self.router.on_sentence(text):
                    return  # the call is being passed on: no answer from the LLM
            elif self.router.taken is not None:
                return
        await self.push_frame(frame, direction)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
