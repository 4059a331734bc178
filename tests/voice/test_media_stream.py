"""/media-stream edges: stream tokens, malformed input, a returning caller's greeting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.tables import Call, Caller, CallTurn
from phone_agent.telephony.stream_token import issue_stream_token
from tests.fakes.audio import is_silent, speech_wav


@pytest.mark.parametrize("kind", ["missing", "forged", "expired", "other-call"])
async def test_bad_token_closes_the_socket(agent_factory: Any, db_rows: Any, kind: str) -> None:
    with agent_factory() as agent:
        key = b"not-the-key"
        token = {
            "missing": "",
            "forged": issue_stream_token(key, call_sid="CA1", caller=None, ttl_seconds=60),
            "expired": issue_stream_token(b"voice-tests-secret", call_sid="CA1", caller=None, ttl_seconds=-5),
            "other-call": issue_stream_token(
                b"voice-tests-secret", call_sid="CAother", caller=None, ttl_seconds=60
            ),
        }[kind]
        async with agent.caller(token=token, call_sid="CA1") as caller:
            await caller.wait_for_close(timeout=10)
        if kind == "forged":  # the server is still healthy: a good call right after works
            async with agent.caller() as good:
                await good.wait_for_agent_audio(timeout=20)
    assert caller.close_code == 1008 and caller.ended_by == "server_closed"
    assert not [a for a in caller.agent_audio if not is_silent(a.audio)]
    assert await db_rows(select(Call).where(Call.call_sid == "CA1")) == []


async def test_malformed_and_unknown_messages_are_ignored(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory() as agent:
        agent.openai.transcripts.append("What are your opening hours?")
        agent.openai.script("We are open nine to five.")
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=20)
            for junk in (
                "not json",
                b"\x00\x01binary",
                "[1, 2, 3]",
                json.dumps({"event": "surprise", "streamSid": caller.stream_sid}),
                json.dumps({"event": "media", "media": {"payload": "%%%not-base64%%%"}}),
                json.dumps({"event": "media", "media": "nope"}),
                json.dumps({"event": "mark", "mark": {}}),
                json.dumps({"event": "mark", "mark": {"name": "pa:x:y"}}),
                json.dumps({"event": "dtmf", "dtmf": 5}),
            ):
                await caller.send_raw(junk)
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("What are your opening hours"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.3, timeout=30)
            assert caller.closed_at is None  # still connected after all that
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    texts = [t.text for t in await db_rows(select(CallTurn).where(CallTurn.call_id == call.id))]
    assert texts[-2:] == ["What are your opening hours?", "We are open nine to five."]


async def test_returning_caller_is_greeted_by_name(agent_factory: Any, db_rows: Any, tmp_path: Any) -> None:
    with agent_factory() as agent:
        engine = create_engine(agent.settings.database_url)
        async with transaction(session_factory(engine)) as session:
            session.add(Caller(phone="+15550007777", name="Maria"))
        await engine.dispose()
        async with agent.caller(from_number="+15550007777") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.3, timeout=30)
        async with agent.caller(from_number="+15550008888") as stranger:
            await stranger.wait_for_agent_audio(timeout=20)
            await stranger.wait_for_quiet(0.3, timeout=30)
    spoken = [c.text for c in agent.elevenlabs.contexts.values()]
    assert any("Hi Maria, welcome back to Bella Cucina" in text for text in spoken), spoken
    [maria] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    [greeting] = await db_rows(select(CallTurn).where(CallTurn.call_id == maria.id))
    assert greeting.text == "Hi Maria, welcome back to Bella Cucina. This is Ava. How can I help?"
    [other] = await db_rows(select(Call).where(Call.call_sid == stranger.call_sid))
    [first] = await db_rows(select(CallTurn).where(CallTurn.call_id == other.id))
    assert first.text.startswith("Hello, thanks for calling Bella Cucina.")
    [maria_caller] = await db_rows(select(Caller).where(Caller.phone == "+15550007777"))
    assert maria.caller_id == maria_caller.id
