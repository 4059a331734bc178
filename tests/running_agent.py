"""A running phone-agent (real uvicorn on an ephemeral port) wired to the provider fakes (a pytest plugin:
``agent_factory``, ``db_rows``; loaded by tests/conftest.py for every test package)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from phone_agent.app import create_app
from phone_agent.config import Settings
from phone_agent.local_models import INSTALL_HINT, local_stack_installed
from phone_agent.telephony.stream_token import issue_stream_token, signing_key
from tests.conftest import make_settings
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import FakeTwilioREST, new_sid

# Tests of the real local STT/TTS models: skipped, with the reason, when ``[local]`` is not installed.
requires_local = pytest.mark.skipif(
    not local_stack_installed(), reason=f"the [local] extra is not installed: {INSTALL_HINT}"
)
SLOW_MACHINE_TIMEOUT = 400  # seconds: CPU-bound local models on a 2-core machine shared with others


def bound_socket() -> socket.socket:
    """A socket bound to an ephemeral 127.0.0.1 port: its address is known before the app is built
    (for ``PUBLIC_URL``, where Twilio's callbacks go)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(app: FastAPI, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread (on ``sock`` when given: see ``bound_socket``); yields
    its ws:// base URL."""
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            ws_per_message_deflate=False,
            proxy_headers=False,  # as `phone-agent serve`: forwarded headers are the app's business
            lifespan="on",
            timeout_graceful_shutdown=3,
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("phone-agent test server failed to start")
        time.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class Agent:
    """A running agent and what a test needs to call it."""

    settings: Settings
    app: FastAPI
    ws_url: str
    openai: FakeOpenAI
    elevenlabs: FakeElevenLabs

    def caller(
        self, *, from_number: str = "+15551230001", token: str | None = None, **kwargs: Any
    ) -> MediaStreamCaller:
        """A MediaStreamCaller with a valid stream token for a fresh call SID."""
        call_sid = kwargs.pop("call_sid", new_sid("CA"))
        if token is None:
            token = issue_stream_token(
                signing_key(self.settings), call_sid=call_sid, caller=from_number, ttl_seconds=60
            )
        return MediaStreamCaller(
            self.ws_url + "/media-stream",
            custom_parameters={"caller": from_number, "call_sid": call_sid, "token": token},
            call_sid=call_sid,
            from_number=from_number,
            **kwargs,
        )

    def script_speech(self, transcripts: list[str], replies: list[Any]) -> None:
        """Queue what STT hears and what the LLM answers, one per caller utterance.

        Silero may split an espeak utterance in two segments under load; the extra segment is
        transcribed as silence, so each utterance stays one caller message.
        """
        self.openai.transcripts.extend(transcripts)
        self.openai.default_transcript = ""
        self.openai.script(*replies)

    def run(self, coro: Any) -> Any:
        """Run a coroutine against the app's database (in the test's own loop)."""
        return asyncio.run(coro)


# Short greetings keep a test call short (the fake TTS speaks 70 ms per character):
# ``agent_factory(**SHORT_GREETINGS)``.
SHORT_GREETINGS = {
    "PHONE_AGENT_GREETING": "{business_name}, this is {agent_name}.",
    "PHONE_AGENT_RETURNING_GREETING": "Hi {caller_name}, welcome back.",
}


def twilio_env(twilio: FakeTwilioREST) -> dict[str, str]:
    """Environment pointing Twilio call control at the fake (for hang-ups, transfers, call updates)."""
    return {
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "PHONE_AGENT_TWILIO_API_BASE_URL": twilio.url,
    }


def agent_env(tmp_path: Path, openai: FakeOpenAI, elevenlabs: FakeElevenLabs, **extra: str) -> dict[str, str]:
    """Environment pointing every provider at the fakes."""
    env = {
        "OPENAI_API_KEY": openai.api_key,
        "PHONE_AGENT_OPENAI_BASE_URL": openai.url + "/v1",
        "PHONE_AGENT_LLM_BASE_URL": openai.url + "/v1",
        "ELEVENLABS_API_KEY": elevenlabs.api_key,
        "PHONE_AGENT_ELEVENLABS_BASE_URL": elevenlabs.url,
        "PHONE_AGENT_SESSION_SECRET": "voice-tests-secret",
        "PHONE_AGENT_BUSINESS_NAME": "Bella Cucina",
    }
    env.update(extra)
    return env


@pytest.fixture
def agent_factory(tmp_path: Path, fake_openai: FakeOpenAI, fake_elevenlabs: FakeElevenLabs) -> Iterator[Any]:
    """Start an agent with extra env settings: ``with agent_factory(**env) as agent``."""

    @contextmanager
    def start(*, public_url: bool = False, record_greeting: bool = False, **extra: str) -> Iterator[Agent]:
        """``public_url``: PUBLIC_URL is the agent's own http://127.0.0.1:PORT (Twilio calls it back);
        ``record_greeting``: start as ``serve`` does, recording the greeting while it starts."""
        sock = bound_socket()
        if public_url:
            extra["PUBLIC_URL"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = make_settings(tmp_path, **agent_env(tmp_path, fake_openai, fake_elevenlabs, **extra))
        app = create_app(settings, record_greeting=record_greeting)
        with serve(app, sock) as url:
            yield Agent(settings, app, url, fake_openai, fake_elevenlabs)

    yield start


@pytest.fixture
async def db_rows(tmp_path: Path) -> AsyncIterator[Any]:
    """Read rows from the test database: ``await db_rows(select(...))``."""
    from phone_agent.storage.db import create_engine, session_factory

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    sessions = session_factory(engine)

    async def read(statement: Any) -> list[Any]:
        async with sessions() as session:
            return list((await session.execute(statement)).scalars())

    yield read
    await engine.dispose()
