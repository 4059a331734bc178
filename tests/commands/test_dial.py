"""`phone-agent dial NUMBER --purpose …` against a running agent: placed through its API and followed
to the end with ``--wait``; refused numbers exit 3 with the reason, and nothing is dialled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from phone_agent.cli import app
from tests.api.test_outbound_calls import calls_created, put_on_do_not_call
from tests.fakes.twilio_outbound import Callee
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.outbound import API_KEY, CALLEE, PURPOSE, outbound_env


def dial(agent: Any, tmp_path: Path, *args: str, key: str = API_KEY) -> Any:
    http_url = agent.ws_url.replace("ws://", "http://")
    env = {"PHONE_AGENT_API_KEY": key, "PHONE_AGENT_CONFIG": str(tmp_path / "empty-config.json")}
    return CliRunner().invoke(app, ["dial", *args, "--url", http_url], env=env)


def test_dial_places_the_call_and_follows_it(
    agent_factory: Any, fake_twilio: FakeTwilioREST, tmp_path: Path
) -> None:
    fake_twilio.network.callees[CALLEE] = Callee(outcome="no-answer", ring_seconds=0.3)
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        followed = dial(agent, tmp_path, "(555) 123-0077", "--purpose", PURPOSE, "--wait", "--timeout", "20")
        as_json = dial(agent, tmp_path, CALLEE, "--purpose", "a second try", "--json")
        wrong_key = dial(agent, tmp_path, CALLEE, "--purpose", PURPOSE, key="not-the-key")
    print(followed.output)
    assert followed.exit_code == 1, followed.output  # nobody answered
    assert f"calling {CALLEE} (CA" in followed.output and "no-answer" in followed.output
    [first, second] = calls_created(fake_twilio)
    assert first.form["To"] == CALLEE and first.form["MachineDetection"] == "DetectMessageEnd"
    assert as_json.exit_code == 0, as_json.output
    placed = json.loads(as_json.output)
    assert (
        placed["to"] == CALLEE and placed["purpose"] == "a second try" and placed["call_sid"].startswith("CA")
    )
    assert second.form["To"] == CALLEE
    assert wrong_key.exit_code == 2 and "Incorrect API key" in wrong_key.output


def test_dial_refused_exits_3_and_dials_nothing(
    agent_factory: Any, fake_twilio: FakeTwilioREST, tmp_path: Path
) -> None:
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        asyncio.run(put_on_do_not_call(agent, CALLEE))
        refused = dial(agent, tmp_path, CALLEE, "--purpose", PURPOSE)
        bad = dial(agent, tmp_path, "12", "--purpose", PURPOSE)
    unreachable = CliRunner().invoke(
        app,
        ["dial", CALLEE, "--purpose", PURPOSE, "--url", "http://127.0.0.1:9"],
        env={"PHONE_AGENT_API_KEY": API_KEY, "PHONE_AGENT_CONFIG": str(tmp_path / "empty-config.json")},
    )
    assert refused.exit_code == 3 and "do-not-call list" in refused.output
    assert bad.exit_code == 2 and "not a phone number" in bad.output
    assert unreachable.exit_code == 1 and "cannot reach the agent" in unreachable.output
    assert calls_created(fake_twilio) == []
