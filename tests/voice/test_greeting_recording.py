"""A new install records its greeting while it starts, so its first caller is greeted from memory."""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from phone_agent.voice import phrase_cache
from phone_agent.voice.greeting_recording import record_greeting
from phone_agent.voice.phrase_cache import PhraseCache
from phone_agent.voice.services import PHRASES_DIR
from tests.admin.conftest import PASSWORD, log_in_over_http, save_settings_over_http
from tests.conftest import make_settings
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.voice.test_phrase_cache import greeting_contexts


async def test_a_new_install_records_its_greeting_while_it_starts(
    agent_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phrase_cache, "PHRASES", PhraseCache())  # a fresh process
    with agent_factory(record_greeting=True) as agent:
        assert len(greeting_contexts(agent)) == 1  # synthesised before any call
        assert len(list((tmp_path / PHRASES_DIR).glob("*.phrase"))) == 1
        async with agent.caller(from_number="+15551230001") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
        assert len(greeting_contexts(agent)) == 1  # the first call was greeted from memory
        assert caller.protocol_errors == [] and caller.marks_sent_back
        first_heard = b"".join(a.audio for a in caller.agent_audio)
        assert len(first_heard) > 4000  # over half a second of the greeting (mu-law: a byte a sample)

    monkeypatch.setattr(phrase_cache, "PHRASES", PhraseCache())  # a restart: nothing in memory
    with agent_factory(record_greeting=True) as restarted:
        assert len(greeting_contexts(restarted)) == 1  # nothing asked: an earlier process recorded it
        assert len(phrase_cache.PHRASES) == 1  # read from disk while starting
        async with restarted.caller(from_number="+15551230002") as second:
            await second.wait_for_agent_audio(timeout=20)
            await second.wait_for_quiet(0.6, timeout=30)
    assert len(greeting_contexts(agent)) == 1
    assert b"".join(a.audio for a in second.agent_audio) == first_heard


async def test_an_agent_whose_voice_key_is_refused_still_starts_and_answers(
    agent_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phrase_cache, "PHRASES", PhraseCache())
    started = time.monotonic()
    with agent_factory(record_greeting=True, ELEVENLABS_API_KEY="a-key-elevenlabs-refuses") as agent:
        assert time.monotonic() - started < 15  # the recording gave up; the process took calls
        assert not list((tmp_path / PHRASES_DIR).glob("*.phrase"))
        async with agent.caller(from_number="+15551230003") as caller:
            await caller.wait_for_agent_audio(timeout=20)  # the fallback voice greets the caller
    assert caller.protocol_errors == []


async def test_of_several_workers_starting_together_one_records_the_greeting(
    tmp_path: Path, fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phrase_cache, "PHRASES", PhraseCache())
    settings = make_settings(
        tmp_path,
        ELEVENLABS_API_KEY=fake_elevenlabs.api_key,
        PHONE_AGENT_ELEVENLABS_BASE_URL=fake_elevenlabs.url,
    )
    (tmp_path / PHRASES_DIR).mkdir()
    fd = os.open(tmp_path / PHRASES_DIR / ".recording.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another worker is recording it
    try:
        assert await record_greeting(settings) == "being recorded by another process"
    finally:
        os.close(fd)
    assert not fake_elevenlabs.contexts  # no second request for the same greeting
    assert await record_greeting(settings) == "recorded"
    assert await record_greeting(settings) == "stored"
    assert len(fake_elevenlabs.contexts) == 1


async def test_a_greeting_changed_on_the_admin_page_is_recorded_before_the_next_call(
    agent_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phrase_cache, "PHRASES", PhraseCache())
    new = "Good evening, {business_name}, {agent_name} here. What can I do for you?"
    spoken = "Good evening, Bella Cucina, Ava here. What can I do for you?"
    with agent_factory(record_greeting=True, ADMIN_PASSWORD=PASSWORD) as agent:
        async with httpx.AsyncClient(base_url=agent.ws_url.replace("ws://", "http://"), timeout=20) as web:
            csrf = await log_in_over_http(web)
            assert await save_settings_over_http(web, csrf, "personality", greeting=new) == ["greeting"]

        def asked_for_new() -> list[Any]:
            return [c for c in agent.elevenlabs.contexts.values() if spoken in "".join(c.texts)]

        for _ in range(100):  # recorded in the background once the change is saved
            if asked_for_new() and len(list((tmp_path / PHRASES_DIR).glob("*.phrase"))) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(asked_for_new()) == 1
        async with agent.caller(from_number="+15551230004") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
        assert len(asked_for_new()) == 1  # the caller heard the new greeting from memory
        assert len(b"".join(a.audio for a in caller.agent_audio)) > 4000
