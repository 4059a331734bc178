"""A whole `phone-agent call` against an agent on the local stack: Whisper hears the caller, the LLM
(an OpenAI-compatible server: the fake) answers, Piper speaks — and no other provider is used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phone_agent.app import create_app
from phone_agent.cli import app
from tests.conftest import make_settings
from tests.fakes.openai import FakeOpenAI
from tests.running_agent import SHORT_GREETINGS, SLOW_MACHINE_TIMEOUT, requires_local, serve

AUTH_TOKEN = "local-call-twilio-token"
CALLER_LINE = "I would like to book a table for two people"


@requires_local
@pytest.mark.timeout(SLOW_MACHINE_TIMEOUT)
def test_call_on_the_local_stack_uses_no_other_provider(tmp_path: Path) -> None:
    with FakeOpenAI(api_key="local-llm-key") as llm:  # stands in for Ollama / llama.cpp
        llm.script("What time would you like to come?")  # one sentence: one Piper synthesis, no gap
        settings = make_settings(
            tmp_path,
            PHONE_AGENT_VOICE_STACK="local",
            PHONE_AGENT_LLM_PROVIDER="openai-compatible",
            PHONE_AGENT_LLM_BASE_URL=llm.url + "/v1",
            OPENAI_API_KEY=llm.api_key,  # the primary LLM's key; nothing else is configured
            PHONE_AGENT_TTS_FALLBACK_PROVIDER="none",
            PHONE_AGENT_EMBEDDINGS_ENABLED="false",
            PHONE_AGENT_IDLE_TIMEOUT_SECONDS="150",  # Whisper on a busy 2-core machine can take 30 s and more
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            PHONE_AGENT_SESSION_SECRET="local-call-secret",
            PHONE_AGENT_BUSINESS_NAME="Bella Cucina",
            **SHORT_GREETINGS,
        )
        assert settings.elevenlabs_api_key is None and settings.deepgram_api_key is None
        with serve(create_app(settings)) as ws_url:
            result = CliRunner().invoke(
                app,
                [
                    "call",
                    ws_url.replace("ws://", "http://"),
                    "--say",
                    CALLER_LINE,
                    "--auth-token",
                    AUTH_TOKEN,
                    "--timeout",
                    "150",
                ],
                env={
                    "DATABASE_URL": settings.database_url,
                    "PHONE_AGENT_CONFIG": str(tmp_path / "empty-config.json"),
                },
            )
        print(result.output)
        assert result.exit_code == 0, result.output
        assert re.search(
            r"greeting: first audio \d+\.\d\d s after the stream started, \d+\.\d s of speech", result.output
        )
        assert re.search(r"agent   answered \d+\.\d\d s after the caller stopped", result.output)
        assert "agent   What time would you like to come?" in result.output
        # Whisper's transcript reached the LLM; the fake saw nothing but chat completions.
        heard = llm.chat_requests[0]["messages"][-1]["content"].lower()
        assert all(word in heard for word in ("like", "table", "two", "people")), heard
        assert {r.path for r in llm.requests} == {"/v1/chat/completions"}
    # The agent's own record of the call: what Whisper heard, what Piper said, with their timings.
    stored = result.output.split("transcript (agent's database")[1]
    assert re.search(r"caller  .*a table for two", stored, re.IGNORECASE), stored
    assert "agent   What time would you like to come?" in stored
    assert re.search(r"stt \d+ · llm first token \d+ · tts first audio", stored), stored
