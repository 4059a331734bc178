"""The brain's long-lived pieces, made once per process and kept on the runtime.

``runtime.extras`` holds the LLM chain and the Twilio call control (each closed with the runtime).
An admin change to the settings makes a new chain/control for the next conversation; the old
ones keep serving the conversations already running.
"""

from __future__ import annotations

from typing import Any

from phone_agent.brain.agent import Agent
from phone_agent.brain.builtins import default_registry
from phone_agent.brain.llm import LLMChain
from phone_agent.brain.tools import ToolContext
from phone_agent.config import Settings
from phone_agent.memory import memory_store_for
from phone_agent.memory.base import MemoryStore
from phone_agent.runtime import Runtime
from phone_agent.telephony.control import CallControl

CHAIN_KEY = "brain_llm_chain"
CONTROL_KEY = "call_control"


def _cached(runtime: Runtime, key: str, settings: Settings, build: Any) -> Any:
    entry = runtime.extras.get(key)
    if entry is None or entry.settings is not settings:
        entry = _Entry(settings, build(settings))
        runtime.extras[key] = entry
    return entry.value


class _Entry:
    """A component and the settings it was built from (closed with the runtime)."""

    def __init__(self, settings: Settings, value: Any) -> None:
        self.settings = settings
        self.value = value

    async def aclose(self) -> None:
        await self.value.aclose()


def llm_chain_for(runtime: Runtime) -> LLMChain:
    """The LLM chain for the current settings."""
    return _cached(runtime, CHAIN_KEY, runtime.settings, LLMChain.from_settings)


def call_control_for(runtime: Runtime) -> CallControl:
    """Twilio call control for the current settings."""
    return _cached(runtime, CONTROL_KEY, runtime.settings, CallControl)


def memory_for(runtime: Runtime) -> MemoryStore:
    """The memory store for the settings (local or the memory service), shared on the runtime."""
    return memory_store_for(runtime.settings, runtime)


def agent_for(runtime: Runtime) -> Agent:
    """An agent with the built-in tools, the current chain and the memory store."""
    return Agent(llm_chain_for(runtime), default_registry(), memory_for(runtime))


def tool_context_for(runtime: Runtime, *, caller_phone: str | None, **fields: Any) -> ToolContext:
    """A ToolContext for one conversation on this runtime."""
    return ToolContext(
        settings=runtime.settings,
        sessions=runtime.sessions,
        control=call_control_for(runtime),
        memory=memory_for(runtime),
        caller_phone=caller_phone,
        **fields,
    )
