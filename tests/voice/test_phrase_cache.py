"""The greeting is synthesised once per process; later calls hear it from the phrase cache, and a
restarted process's first call from the phrase stored in data_dir."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from phone_agent.memory.base import MemoryItem
from phone_agent.memory.factory import local_store
from phone_agent.storage.tables import Call, CallTurn
from phone_agent.voice import phrase_cache
from phone_agent.voice.phrase_cache import Phrase, PhraseCache, PhraseStore
from phone_agent.voice.services import PHRASES_DIR
from tests.fakes.audio import speech_wav
from tests.running_agent import SHORT_GREETINGS

GREETING = "Hello, thanks for calling Bella Cucina. This is Ava. How can I help you today?"


def greeting_contexts(agent: Any) -> list[Any]:
    return [c for c in agent.elevenlabs.contexts.values() if "thanks for calling" in c.text]


async def test_second_call_hears_the_cached_greeting_without_asking_elevenlabs(
    agent_factory: Any, db_rows: Any
) -> None:
    with agent_factory() as agent:
        async with agent.caller(from_number="+15551230001") as first:
            await first.wait_for_agent_audio(timeout=20)
            await first.wait_for_quiet(0.6, timeout=30)
        assert len(greeting_contexts(agent)) == 1  # synthesised once, for the first call

        agent.openai.script("Of course. For what day?")
        async with agent.caller(from_number="+15551230002") as second:
            await second.wait_for_agent_audio(timeout=20)
            await second.wait_for_quiet(0.6, timeout=30)
            heard_greeting = b"".join(a.audio for a in second.agent_audio)
            turn = await second.say_wav(speech_wav("I would like to book a table"))
            await second.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await second.wait_for_quiet(0.6, timeout=30)
        call_sid = second.call_sid

    assert len(greeting_contexts(agent)) == 1  # ElevenLabs was not asked again
    assert heard_greeting == b"".join(a.audio for a in first.agent_audio)  # the same audio
    assert second.protocol_errors == [] and second.marks_sent_back  # marks still flow
    # the conversation still holds the greeting: the LLM saw it, the call record has it
    # (the call's request ends with the caller's words; after the call, memory asks the LLM for facts)
    [request] = [
        r
        for r in agent.openai.chat_requests
        if r["messages"][-1].get("role") == "user"
        and r["messages"][-1].get("content") == agent.openai.default_transcript
        and GREETING in str(r["messages"])
    ]
    history = [m for m in request["messages"] if m["role"] != "system"]
    assert history[0] == {"role": "assistant", "content": GREETING}
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns] == [
        ("agent", GREETING),
        ("caller", agent.openai.default_transcript),
        ("agent", "Of course. For what day?"),
    ]


def test_cache_evicts_the_least_recently_used_beyond_its_limits() -> None:
    cache = PhraseCache(max_phrases=2, max_bytes=1000)
    cache.put("a", Phrase(chunks=[b"x" * 100]))
    cache.put("b", Phrase(chunks=[b"x" * 100]))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", Phrase(chunks=[b"x" * 100]))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    cache.put("big", Phrase(chunks=[b"x" * 950]))  # over the byte budget: older ones go
    assert len(cache) == 1 and cache.get("big") is not None


async def test_a_restarted_agent_greets_its_first_call_from_the_stored_phrase(
    agent_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        async with agent.caller(from_number="+15551230001") as first:
            await first.wait_for_agent_audio(timeout=20)
            await first.wait_for_quiet(0.6, timeout=30)
    asked = len(agent.elevenlabs.contexts)
    assert asked >= 1  # the first call ever: the greeting was synthesised
    assert len(list((tmp_path / PHRASES_DIR).glob("*.phrase"))) == 1

    monkeypatch.setattr(phrase_cache, "PHRASES", PhraseCache())  # a fresh process: nothing in memory
    with agent_factory(**SHORT_GREETINGS) as restarted:
        async with restarted.caller(from_number="+15551230002") as second:
            await second.wait_for_agent_audio(timeout=20)
            await second.wait_for_quiet(0.6, timeout=30)

    assert len(agent.elevenlabs.contexts) == asked  # ElevenLabs was not asked for the greeting again
    assert b"".join(a.audio for a in second.agent_audio) == b"".join(a.audio for a in first.agent_audio)
    assert second.protocol_errors == [] and second.marks_sent_back


async def test_a_greeting_with_the_callers_name_is_never_stored(agent_factory: Any, tmp_path: Path) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        store = local_store(agent.settings)
        await store.store_memories("+15550007777", [MemoryItem(content="Likes tea.")], name="Maria")
        await store.aclose()
        async with agent.caller(from_number="+15550007777") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.6, timeout=30)
    assert [c.text for c in agent.elevenlabs.contexts.values()][0].strip() == "Hi Maria, welcome back."
    assert not list((tmp_path / PHRASES_DIR).glob("*.phrase"))


def test_store_round_trip_and_what_it_refuses(tmp_path: Path) -> None:
    store = PhraseStore(tmp_path / "phrases", max_files=2, max_days=1)
    phrase = Phrase(
        chunks=[b"\x01" * 160, b"\x02" * 80], words=[("Hello,", 0.0, True), ("there.", 0.4, True)]
    )
    assert store.load("key-a") is None
    store.save("key-a", phrase)
    assert store.load("key-a") == phrase
    assert store.load("key-b") is None  # another key: nothing

    path = store.path_for("key-a")
    path.write_bytes(path.read_bytes()[:-10])  # cut short: synthesised again, not replayed
    assert store.load("key-a") is None
    store.save("key-a", phrase)
    old = time.time() - 2 * 86400
    os.utime(path, (old, old))  # older than max_days: the voice may have changed since
    assert store.load("key-a") is None

    store.save("key-b", phrase)
    store.save("key-c", phrase)
    store.save("key-d", phrase)  # beyond max_files: the oldest go
    assert sorted(p.name for p in (tmp_path / "phrases").glob("*.phrase")) == sorted(
        store.path_for(k).name for k in ("key-c", "key-d")
    )
