"""Built-in tools: appointments, SMS, messages, transfer, hang-up and caller lookup."""

from __future__ import annotations

from phone_agent.brain.builtins.appointments import BOOK_APPOINTMENT
from phone_agent.brain.builtins.callers import LOOKUP_CALLER
from phone_agent.brain.builtins.calls import END_CALL, TRANSFER_CALL
from phone_agent.brain.builtins.messaging import SEND_SMS, TAKE_MESSAGE
from phone_agent.brain.tools import Tool, ToolRegistry

BUILTIN_TOOLS: tuple[Tool, ...] = (
    BOOK_APPOINTMENT,
    TAKE_MESSAGE,
    SEND_SMS,
    TRANSFER_CALL,
    END_CALL,
    LOOKUP_CALLER,
)


def default_registry() -> ToolRegistry:
    """A registry holding every built-in tool."""
    return ToolRegistry(BUILTIN_TOOLS)
