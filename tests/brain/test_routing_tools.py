"""The tools routing adds: ``transfer_call`` to a named department, ``route_call`` reporting intents
(its argument is an enum of the rules' intents), and the departments in the persona prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phone_agent.brain.builtins import default_registry
from phone_agent.brain.persona import persona_prompt
from phone_agent.brain.routing.tool import route_call_tool, with_route_call
from phone_agent.brain.tools import ToolContext, ToolRegistry
from phone_agent.telephony.control import CallControl
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.telephony.test_control import twilio_settings

DEPARTMENTS = {"PHONE_AGENT_TRANSFER_DESTINATIONS": "Claims=+15550100001; Sales=+15550100002"}


async def test_transfer_call_to_a_department(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    settings = twilio_settings(tmp_path, fake_twilio, **DEPARTMENTS)
    assert (
        "Departments you can transfer callers to (transfer_call destination): Claims, Sales."
        in persona_prompt(settings)
    )
    call = fake_twilio.add_call(from_="+15550100009")
    control = CallControl(settings)
    ctx = ToolContext(settings=settings, control=control, call_sid=call["sid"], channel="phone")
    try:
        wrong = await default_registry().run("transfer_call", {"reason": "x", "destination": "Billing"}, ctx)
        assert wrong.error == "There is no department 'Billing'; the departments are: Claims, Sales."
        result = await default_registry().run(
            "transfer_call", {"reason": "new claim", "destination": "claims"}, ctx
        )
        assert result.ok
        await ctx.speech_finished()
    finally:
        await control.aclose()
    [request] = fake_twilio.requests
    assert ">+15550100001</Number>" in request.form["Twiml"] and "reason=new+claim" in request.form["Twiml"]


async def test_route_call_offers_exactly_the_rules_intents(
    tmp_path: Path, fake_twilio: FakeTwilioREST
) -> None:
    settings = twilio_settings(tmp_path, fake_twilio)
    tool = route_call_tool(["file a claim", "emergency"], unclear=True)
    schema = tool.openai_schema()["function"]
    assert schema["parameters"]["properties"]["intent"]["enum"] == ["file a claim", "emergency", "unclear"]
    assert "'file a claim'; 'emergency'" in schema["description"]
    heard: list[str] = []

    async def on_intent(intent: str) -> dict[str, Any]:
        heard.append(intent)
        return {"status": "noted"}

    registry = with_route_call(default_registry(), ["file a claim"], unclear=False)
    assert registry.names[-1] == "route_call" and with_route_call(registry, [], unclear=False) is registry
    ctx = ToolContext(settings=settings, channel="phone", on_intent=on_intent)
    assert (await registry.run("route_call", {"intent": "file a claim"}, ctx)).ok and heard == [
        "file a claim"
    ]
    refused = await registry.run("route_call", {"intent": "order a pizza"}, ctx)
    assert not refused.ok and "intent" in (refused.error or "")
    chat = await ToolRegistry([tool]).run(
        "route_call", {"intent": "emergency"}, ToolContext(settings=settings)
    )
    assert chat.error == "Routing works on phone calls only; carry on helping the caller."
