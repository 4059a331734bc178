"""``route_call``: the tool the LLM reports a caller's intent with, when routing rules listen for
intents ("file a claim", "speak to a person", ...) or for turns the agent did not understand.

Its ``intent`` argument is an enum of exactly those intents (plus ``unclear``), so the model can
only name one a rule knows. The call's router (``ToolContext.on_intent``) decides what happens and
the result tells the model what to say.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from phone_agent.brain.routing.rules import UNCLEAR
from phone_agent.brain.tools import Tool, ToolContext, ToolRegistry
from phone_agent.errors import ToolError

ROUTE_CALL = "route_call"


def route_call_tool(intents: list[str], *, unclear: bool) -> Tool:
    """The tool for these intents (``unclear``: also offer ``unclear``)."""
    choices = tuple(dict.fromkeys([*intents, *([UNCLEAR] if unclear else [])]))
    args_model: type[BaseModel] = create_model(
        "RouteCallArgs",
        intent=(Literal[choices], Field(description="What the caller wants, as one of the listed intents.")),  # type: ignore[valid-type,arg-type]
    )
    listed = "; ".join(f"'{c}'" for c in choices if c != UNCLEAR)
    description = "Report what the caller wants when it is one of these intents: " + (listed or "none") + "."
    if unclear:
        description += " Report 'unclear' each time you could not understand what the caller said or wants."
    return Tool(name=ROUTE_CALL, description=description, args_model=args_model, handler=_route_call)


async def _route_call(ctx: ToolContext, args: Any) -> dict[str, Any]:
    if ctx.on_intent is None:
        raise ToolError("Routing works on phone calls only; carry on helping the caller.")
    return await ctx.on_intent(str(args.intent))


def with_route_call(registry: ToolRegistry, intents: list[str], *, unclear: bool) -> ToolRegistry:
    """``registry`` plus ``route_call`` (the same registry when no rule listens for intents)."""
    if not intents and not unclear:
        return registry
    tools = [tool for name in registry.names if (tool := registry.get(name)) is not None]
    return ToolRegistry([*tools, route_call_tool(intents, unclear=unclear)])
