"""`phone-agent call URL` against a running agent: webhook → Media Stream → printed turns + timings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from phone_agent.cli import app
from tests.fakes.audio import speech_wav
from tests.running_agent import SHORT_GREETINGS

AUTH_TOKEN = "cli-test-twilio-token"


def test_call_prints_the_conversation_with_timings(agent_factory: Any, tmp_path: Path) -> None:
    wav = speech_wav("Do you have a table tonight", tmp_path / "question.wav")
    script = tmp_path / "script.txt"
    script.write_text("# a short call\nI would like to book a table\nwav: question.wav\n")
    with agent_factory(**SHORT_GREETINGS, TWILIO_AUTH_TOKEN=AUTH_TOKEN) as agent:
        agent.script_speech(
            ["I would like to book a table.", "Do you have a table tonight?"],
            ["Sure, for how many?", "Yes, we do."],
        )
        http_url = agent.ws_url.replace("ws://", "http://")
        env = {
            "DATABASE_URL": agent.settings.database_url,
            "PHONE_AGENT_CONFIG": str(tmp_path / "empty-config.json"),
        }
        bad = CliRunner().invoke(app, ["call", http_url, "--say", "hello", "--auth-token", "wrong"], env=env)
        result = CliRunner().invoke(
            app,
            ["call", http_url, "--script", str(script), "--auth-token", AUTH_TOKEN, "--timeout", "20"],
            env=env,
        )
    assert bad.exit_code == 1 and "refused the signature" in bad.output
    assert result.exit_code == 0, result.output
    out = result.output
    print(out)
    assert "/media-stream" in out and re.search(r"greeting: first audio \d+\.\d\d s", out)
    assert "caller  'I would like to book a table'" in out and "caller  'question.wav'" in out
    assert len(re.findall(r"answered \d+\.\d\d s after the caller stopped", out)) == 2
    assert "agent   Sure, for how many?" in out and "agent   Yes, we do." in out
    assert len(re.findall(r"caller stopped → audio sent \d+", out)) == 2
    assert wav.exists()


def test_call_without_auth_token_explains(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text("{}")
    result = CliRunner().invoke(
        app, ["call", "http://127.0.0.1:9", "--say", "hi"], env={"PHONE_AGENT_CONFIG": str(config)}
    )
    assert result.exit_code == 2 and "TWILIO_AUTH_TOKEN" in result.output
