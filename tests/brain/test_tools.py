"""Tool registry (schemas, error results) and business hours parsing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, Field

from phone_agent.brain.builtins import default_registry
from phone_agent.brain.hours import nearest_free_slots
from phone_agent.brain.tools import Tool, ToolContext, ToolRegistry, tool_calls_this_turn
from phone_agent.errors import ConfigError, ProviderError
from phone_agent.opening_hours import parse_hours
from tests.conftest import make_settings

NY = ZoneInfo("America/New_York")


class EchoArgs(BaseModel):
    """Echo arguments."""

    text: str = Field(description="What to echo.")
    times: int = Field(1, ge=1, le=3)


async def echo(ctx: ToolContext, args: EchoArgs) -> dict[str, object]:
    return {"echo": args.text * args.times}


async def broken(ctx: ToolContext, args: EchoArgs) -> dict[str, object]:
    raise KeyError("oops")


async def provider_down(ctx: ToolContext, args: EchoArgs) -> dict[str, object]:
    raise ProviderError("twilio", "send SMS failed: Service unavailable (code 20500)")


def registry() -> ToolRegistry:
    return ToolRegistry(
        [
            Tool("echo", "Echo text.", EchoArgs, echo),
            Tool("broken", "Always fails.", EchoArgs, broken),
            Tool("provider_down", "Provider fails.", EchoArgs, provider_down),
        ]
    )


def test_schema_is_derived_from_the_args_model() -> None:
    assert registry().openai_tools()[0] == {
        "type": "function",
        "function": {
            "name": "echo",
            "description": "Echo text.",
            "parameters": {
                "description": "Echo arguments.",
                "type": "object",
                "properties": {
                    "text": {"description": "What to echo.", "type": "string"},
                    "times": {"default": 1, "maximum": 3, "minimum": 1, "type": "integer"},
                },
                "required": ["text"],
            },
        },
    }
    assert default_registry().names == [
        "book_appointment",
        "take_message",
        "send_sms",
        "transfer_call",
        "end_call",
        "lookup_caller",
    ]


async def test_run_ok_and_every_failure_is_a_result(tmp_path: Path) -> None:
    ctx = ToolContext(settings=make_settings(tmp_path))
    tools = registry()
    ok = await tools.run("echo", '{"text": "ab", "times": 2}', ctx, call_id="c1")
    assert ok.ok and json.loads(ok.content()) == {"ok": True, "echo": "abab"}
    failures = [
        await tools.run("broken", {"text": "x"}, ctx),
        await tools.run("provider_down", {"text": "x"}, ctx),
        await tools.run("echo", '{"times": 9}', ctx),
        await tools.run("echo", "{not json", ctx),
        await tools.run("nope", "{}", ctx),
    ]
    assert [json.loads(r.content())["ok"] for r in failures] == [False] * 5
    assert [r.error for r in failures] == [
        "The broken tool failed (KeyError).",
        "That did not work: twilio: send SMS failed: Service unavailable (code 20500)",
        "Bad arguments for echo: text: Field required; times: Input should be less than or equal to 3.",
        "The arguments were not valid JSON: Expecting property name enclosed in double quotes.",
        "There is no tool called 'nope'; available: echo, broken, provider_down.",
    ]
    # every call is recorded for the turn, in order
    records = ctx.take_records()
    assert [(r["name"], r["ok"]) for r in records] == [
        ("echo", True),
        ("broken", False),
        ("provider_down", False),
        ("echo", False),
        ("echo", False),
        ("nope", False),
    ]
    assert records[0] == {
        "id": "c1",
        "name": "echo",
        "arguments": {"text": "ab", "times": 2},
        "ok": True,
        "result": {"echo": "abab"},
        "error": None,
    }
    assert ctx.take_records() == []


def test_tool_calls_are_counted_since_the_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "tool", "tool_call_id": "1", "content": "{}"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "tool_calls": []},
        {"role": "tool", "tool_call_id": "2", "content": "{}"},
        {"role": "tool", "tool_call_id": "3", "content": "{}"},
    ]
    assert tool_calls_this_turn(messages) == 2
    assert tool_calls_this_turn(messages[:3]) == 0


def test_parse_hours_and_errors() -> None:
    hours = parse_hours("Mon-Fri 09:00-12:00,13:00-17:00; Sat 10:00-12:00")
    monday_10 = datetime(2026, 11, 30, 10, 0, tzinfo=NY)
    assert hours.is_open(monday_10, 30, NY)
    assert not hours.is_open(datetime(2026, 11, 30, 11, 45, tzinfo=NY), 30, NY)  # runs into lunch
    assert not hours.is_open(datetime(2026, 12, 6, 10, 0, tzinfo=NY), 30, NY)  # Sunday
    assert hours.is_open(datetime(2026, 12, 5, 11, 30, tzinfo=NY), 30, NY)  # Saturday
    assert parse_hours("Fri-Mon 08:00-09:00").intervals.keys() == {4, 5, 6, 0}
    for bad in ("Mon-Fri nine to five", "Funday 09:00-10:00", "Mon 17:00-09:00"):
        with pytest.raises(ConfigError, match="business_hours: cannot read"):
            parse_hours(bad)


def test_nearest_free_slots_skip_taken_closed_and_past() -> None:
    hours = parse_hours("Mon-Fri 09:00-17:00")
    now = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 New York
    wanted = datetime(2026, 11, 30, 16, 30, tzinfo=NY)
    taken = [(datetime(2026, 11, 30, 16, 0, tzinfo=NY), 60)]
    slots = nearest_free_slots(hours, NY, wanted, 30, taken, now=now)
    assert [s.strftime("%a %H:%M") for s in slots] == ["Mon 14:30", "Mon 15:00", "Mon 15:30"]
    friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=NY)
    slots = nearest_free_slots(hours, NY, friday_evening, 30, [], now=now)
    assert [s.strftime("%a %d %H:%M") for s in slots] == ["Fri 04 15:30", "Fri 04 16:00", "Fri 04 16:30"]


async def test_a_tool_call_cut_off_by_an_interruption_or_hang_up_still_finishes_its_writes(
    tmp_path: Path,
) -> None:
    """Pipecat cancels a running function call when the caller interrupts or the call ends: the
    tool's work goes on (a message the owner was sent is stored too) and ``settle`` waits for it,
    so the call's review sees the row."""
    ctx = ToolContext(settings=make_settings(tmp_path))
    written: list[str] = []
    started = asyncio.Event()

    async def take_message() -> str:
        started.set()
        await asyncio.sleep(0.2)  # notifying the owner, then the row
        written.append("message")
        return "stored"

    handler = asyncio.ensure_future(ctx.run_to_completion(take_message()))
    await started.wait()
    handler.cancel()  # the interruption / the end of the call
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert written == []
    await ctx.settle(within=5)
    assert written == ["message"]
    await ctx.settle(within=5)  # nothing running: returns at once
    assert await ctx.run_to_completion(take_message()) == "stored"
