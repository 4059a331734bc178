"""Pytest fixtures starting each fake for one test (loaded from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI
from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.fakes.openai_realtime_stt import FakeOpenAIRealtimeSTT
from tests.fakes.smtp import FakeSMTP
from tests.fakes.twilio_rest import FakeTwilioREST


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running `FakeOpenAI` (api key `fake_openai.api_key`, base URL `fake_openai.url + "/v1"`)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioREST]:
    """A running `FakeTwilioREST` (`fake_twilio.client()` is an official SDK client pointed at it)."""
    with FakeTwilioREST() as fake:
        yield fake


@pytest.fixture
def fake_smtp() -> Iterator[FakeSMTP]:
    """A running `FakeSMTP` mail server (no TLS; login ``owner-bot`` / ``smtp-secret-pw``)."""
    with FakeSMTP(username="owner-bot", password="smtp-secret-pw") as fake:
        yield fake


@pytest.fixture
def fake_elevenlabs() -> Iterator[FakeElevenLabs]:
    """A running `FakeElevenLabs` (websocket base `fake_elevenlabs.ws_url`, HTTP base `.url`)."""
    with FakeElevenLabs() as fake:
        yield fake


@pytest.fixture
def fake_deepgram() -> Iterator[FakeDeepgram]:
    """A running `FakeDeepgram` (pass `base_url=fake_deepgram.url` to `DeepgramSTTService`)."""
    with FakeDeepgram() as fake:
        yield fake


@pytest.fixture
def fake_openai_realtime() -> Iterator[FakeOpenAIRealtime]:
    """A running `FakeOpenAIRealtime` (websocket URL `fake_openai_realtime.ws_url + "/v1/realtime"`)."""
    with FakeOpenAIRealtime() as fake:
        yield fake


@pytest.fixture
def fake_openai_realtime_stt() -> Iterator[FakeOpenAIRealtimeSTT]:
    """A running `FakeOpenAIRealtimeSTT` (base URL of the STT service: `fake.ws_url + "/v1/realtime"`)."""
    with FakeOpenAIRealtimeSTT() as fake:
        yield fake
