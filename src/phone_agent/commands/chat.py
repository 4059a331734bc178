"""``phone-agent chat``: talk to the agent from a terminal, in-process (same brain as a call)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from phone_agent.config import Settings


def chat(
    message: Annotated[
        str | None, typer.Argument(help="One message; without it, read lines from stdin.")
    ] = None,
    caller: Annotated[str, typer.Option(help="Caller number: memory and tools act for this caller.")] = (
        "+15550000000"
    ),
) -> None:
    """Chat with the agent (persona, memory, tools, LLM chain) without a phone; tool calls are shown."""
    from phone_agent.commands.common import console, settings_or_exit

    lines = [message] if message is not None else (line.strip() for line in sys.stdin)
    asyncio.run(converse(settings_or_exit(), caller, lines, console))


async def converse(settings: Settings, caller: str, lines: Iterable[str], console: Console) -> None:
    """Run one conversation over ``lines`` (settings + admin overrides) and print each reply and tool call.

    Raises:
        ConfigError: no LLM can answer with these settings (no key for OpenAI's API); the CLI prints
            it and exits 2 instead of sending no key and printing the provider's connection error.
    """
    from phone_agent.brain.llm import missing_llm_key
    from phone_agent.commands.common import command_services
    from phone_agent.errors import ConfigError
    from phone_agent.storage.phones import normalise_phone

    async with command_services(settings) as services:
        problem = missing_llm_key(services.settings)
        if problem:
            raise ConfigError(problem)
        agent = services.agent()
        ctx = services.tool_context(caller_phone=normalise_phone(caller), channel="chat")
        history: list[dict[str, Any]] = []
        for line in lines:
            if not line:
                continue
            history.append({"role": "user", "content": line})
            result = await agent.run_turn(history, ctx)
            history.extend(result.new_messages)
            for record in result.tool_records:
                outcome = "ok" if record["ok"] else f"error: {record['error']}"
                console.print(f"  [tool] {record['name']} {record['arguments']} -> {outcome}", markup=False)
            console.print(f"{services.settings.agent_name}: {result.text}", highlight=False, markup=False)
            if result.ended:
                break
