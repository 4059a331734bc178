"""The tool registry: what the LLM may do, how its arguments are checked, and how failures read.

A tool is a name, a description, a pydantic model of its arguments (the JSON schema the LLM sees
is derived from it) and an async handler ``handler(ctx, args) -> dict``. ``ToolRegistry.run``
never raises: a failing tool gives an error result the model can speak about ("I couldn't send
the text: ..."), so a live call never goes silent because a tool broke.

``ToolContext`` is one conversation's state (a phone call or an HTTP chat): who is calling, the
database, call control, and actions that must wait until the agent has finished speaking
(``end_call`` hangs up only after the goodbye has played; see ``ToolContext.speech_finished``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from loguru import logger
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings
from phone_agent.errors import ConfigError, PhoneAgentError, ProviderError, ToolError
from phone_agent.memory.base import MemoryStore
from phone_agent.storage.tables import utcnow
from phone_agent.tasks import TaskOwner
from phone_agent.telephony.control import CallControl

Handler = Callable[["ToolContext", Any], Awaitable[dict[str, Any]]]
Channel = Literal["phone", "chat", "web"]  # a Twilio call, an HTTP chat, the admin page's softphone
AFTER_SPEECH_FALLBACK_SECONDS = 10.0  # run a pending hang-up/transfer even if no speech-end comes
T = TypeVar("T")
TOOL_SETTLE_SECONDS = 20.0  # longest the end of a call waits for its tool calls still running


class ToolRefused(ToolError):
    """A tool declined with details the model should offer (e.g. free slots instead of a taken one)."""

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.data = data


@dataclass(frozen=True)
class Tool:
    """One tool the LLM can call."""

    name: str
    description: str
    args_model: type[BaseModel]
    handler: Handler

    def parameters(self) -> dict[str, Any]:
        """JSON schema of the arguments (pydantic's, without titles the model does not need)."""
        return _strip_titles(self.args_model.model_json_schema())

    def openai_schema(self) -> dict[str, Any]:
        """The ``tools`` entry of a chat-completions request."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters()},
        }


@dataclass
class ToolResult:
    """What a tool call produced; ``content()`` is the tool message the model reads."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    call_id: str | None = None

    def content(self) -> str:
        """JSON for the ``tool`` message."""
        body = {"ok": True, **self.data} if self.ok else {"ok": False, "error": self.error, **self.data}
        return json.dumps(body, default=str)

    def record(self) -> dict[str, Any]:
        """The entry stored with the turn in ``call_turns.tool_calls``."""
        return {
            "id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "ok": self.ok,
            "result": self.data,
            "error": self.error,
        }


@dataclass
class ToolContext:
    """One conversation's state shared by its tool calls."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession] | None = None
    control: CallControl | None = None
    memory: MemoryStore | None = None
    caller_phone: str | None = None
    caller_name: str | None = None
    call_sid: str | None = None  # a live Twilio call; None for an HTTP chat
    call_id: int | None = None  # calls.id of this conversation, when stored
    channel: Channel = "chat"
    clock: Callable[[], datetime] = utcnow
    on_hang_up: Callable[[], Awaitable[None]] | None = None  # the voice pipeline's own hang-up, if any
    # Called just before a transfer redirects the call: the pipeline must then end without hanging
    # up (Pipecat's Twilio serializer would otherwise end the call being transferred).
    before_transfer: Callable[[], Awaitable[None]] | None = None
    tasks: TaskOwner | None = None  # owns the after-speech fallback timer (the process's, in the app)
    # The call's routing rules (voice/routing.py): an intent the LLM recognised → the tool's result.
    on_intent: Callable[[str], Awaitable[dict[str, Any]]] | None = None
    ended: bool = False
    end_reason: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    _after_speech: Callable[[], Awaitable[None]] | None = None
    _fallback: asyncio.Task[None] | None = None
    _running: set[asyncio.Task[Any]] = field(default_factory=set)

    def now(self) -> datetime:
        """Current time (a test can pass a fixed clock)."""
        return self.clock()

    def take_records(self) -> list[dict[str, Any]]:
        """Tool calls since the last take (the voice pipeline stores them with the agent turn)."""
        records, self.records = self.records, []
        return records

    def after_speech(self, action: Callable[[], Awaitable[None]], label: str) -> None:
        """Run ``action`` once the agent has finished speaking (or after a fallback delay)."""
        self._after_speech = action
        if self._fallback is None:
            timer = self._fallback_after(label)
            name = f"after-speech-{label}"
            self._fallback = (
                self.tasks.spawn(timer, name=name)
                if self.tasks is not None
                else asyncio.get_running_loop().create_task(timer, name=name)
            )  # None while the process shuts down: the call is ending anyway

    async def _fallback_after(self, label: str) -> None:
        await asyncio.sleep(AFTER_SPEECH_FALLBACK_SECONDS)
        logger.warning("no end of speech after {}: running it anyway", label)
        self._fallback = None  # don't let speech_finished cancel this very task
        await self.speech_finished()

    async def speech_finished(self) -> None:
        """Hook for the voice pipeline: the agent's audio (e.g. the goodbye) has finished playing."""
        action, self._after_speech = self._after_speech, None
        if self._fallback is not None:
            self._fallback.cancel()
            self._fallback = None
        if action is not None:
            try:
                await action()
            except PhoneAgentError as exc:
                logger.error("call action after speech failed: {}", exc)

    def close(self) -> None:
        """The conversation ended: a pending action's fallback timer is cancelled."""
        if self._fallback is not None:
            self._fallback.cancel()
            self._fallback = None

    async def run_to_completion(self, work: Awaitable[T]) -> T:
        """Await ``work`` in its own task: cancelling the caller (Pipecat cancels a function call
        when the caller interrupts or the call ends) does not cut a tool's writes in half, e.g. a
        message sent to the owner but never stored. ``settle`` waits for such tasks."""
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def settle(self, within: float = TOOL_SETTLE_SECONDS) -> None:
        """Wait (at most ``within`` s) for the tool calls still running: the call's review must
        see the rows they write (a message taken decides the outcome)."""
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=within)
        if late:
            logger.warning("{} tool call(s) still running {} s after the call ended", len(late), within)

    def pending_action(self) -> bool:
        """True while a hang-up or transfer waits for the agent to stop speaking."""
        return self._after_speech is not None


class ToolRegistry:
    """Tools by name; runs calls and turns every failure into an error result."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        """Register a tool (names are unique)."""
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, if any."""
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._tools)

    def openai_tools(self) -> list[dict[str, Any]]:
        """Every tool in chat-completions ``tools`` form."""
        return [tool.openai_schema() for tool in self._tools.values()]

    async def run(
        self,
        name: str,
        arguments: str | Mapping[str, Any] | None,
        ctx: ToolContext,
        *,
        call_id: str | None = None,
    ) -> ToolResult:
        """Run one tool call; never raises (errors become ``ok: false`` results)."""
        raw: dict[str, Any] = {}
        try:
            raw = _parse_arguments(arguments)
            tool = self._tools.get(name)
            if tool is None:
                raise ToolError(f"There is no tool called {name!r}; available: {', '.join(self._tools)}.")
            try:
                args = tool.args_model.model_validate(raw)
            except ValidationError as exc:
                raise ToolError(f"Bad arguments for {name}: {_validation_summary(exc)}.") from exc
            data = await tool.handler(ctx, args)
            result = ToolResult(name, raw, True, data, call_id=call_id)
        except ToolError as exc:
            data = exc.data if isinstance(exc, ToolRefused) else {}
            result = ToolResult(name, raw, False, data, str(exc), call_id)
        except (ProviderError, ConfigError) as exc:
            result = ToolResult(name, raw, False, error=f"That did not work: {exc}", call_id=call_id)
        except Exception as exc:  # a bug in a tool must not end the call
            logger.exception("tool {} failed", name)
            result = ToolResult(
                name, raw, False, error=f"The {name} tool failed ({type(exc).__name__}).", call_id=call_id
            )
        logger.info("tool {} -> {}", name, "ok" if result.ok else f"error: {result.error}")
        ctx.records.append(result.record())
        return result


MEMORY_READ_SECS = 1.5  # longest a tool waits on the memory store during a conversation


async def read_memory(read: Awaitable[T], *, what: str) -> T:
    """A memory read inside a tool, bounded by ``MEMORY_READ_SECS``: a slow or failing memory
    service becomes a ``ToolError`` the agent can work around, never a stalled turn."""
    try:
        return await asyncio.wait_for(read, MEMORY_READ_SECS)
    except (TimeoutError, PhoneAgentError, OSError) as exc:
        logger.warning("memory unavailable to a tool ({}): {}", what, type(exc).__name__)
        raise ToolError(f"{what} is not available right now; carry on without it.") from exc


def tool_calls_this_turn(messages: Sequence[Mapping[str, Any]]) -> int:
    """Tool results since the caller's last message (the per-turn tool-call count)."""
    count = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "tool":
            count += 1
    return count


def limit_error(settings: Settings) -> str:
    """The result given instead of running a tool call past the per-turn limit."""
    return (
        f"Tool call limit reached ({settings.llm_max_tool_calls} in one turn). Do not call tools "
        "again now: answer the caller with what you have, or offer to take a message."
    )


def _parse_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise ToolError(f"The arguments were not valid JSON: {exc.msg}.") from exc
    if not isinstance(value, dict):
        raise ToolError("The arguments must be a JSON object.")
    return value


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema
