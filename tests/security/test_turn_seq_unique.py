"""Finding 11 (part): concurrent ``/v1/chat`` turns on one conversation never share a turn number.

Before: each turn read the conversation's length, ran the LLM, then wrote its two turns at that
number; 10 concurrent turns wrote seq 2 and 3 ten times. Now one turn runs at a time per
conversation and ``(call_id, seq)`` is unique (migration 0007), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from phone_agent.app import create_app
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call, CallTurn
from tests.conftest import make_settings
from tests.fakes.openai import FakeOpenAI

KEY = "sk-agent-seq-key-0123456789"
CALLER = "+15557654321"


async def test_ten_concurrent_turns_are_numbered_one_to_n(
    tmp_path: Path, database_url: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.first_token_latency = 0.05  # every turn's LLM call overlaps the others
    settings = make_settings(
        tmp_path,
        DATABASE_URL=database_url,
        OPENAI_API_KEY=fake_openai.api_key,
        PHONE_AGENT_LLM_BASE_URL=fake_openai.url + "/v1",
        PHONE_AGENT_OPENAI_BASE_URL=fake_openai.url + "/v1",
        PHONE_AGENT_EMBEDDINGS_ENABLED="false",
        PHONE_AGENT_API_KEY=KEY,
    )
    app = create_app(settings, migrate=True)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://agent", headers={"authorization": f"Bearer {KEY}"}
        ) as http,
    ):
        first = await http.post("/v1/chat", json={"caller": CALLER, "message": "Message 0"})
        assert first.status_code == 200, first.text
        conversation = first.json()["conversation_id"]
        answers = await asyncio.gather(
            *(
                http.post(
                    "/v1/chat",
                    json={"caller": CALLER, "message": f"Message {i}", "conversation_id": conversation},
                )
                for i in range(1, 11)
            )
        )
        assert [a.status_code for a in answers] == [200] * 10, [
            a.text for a in answers if a.status_code != 200
        ]
        runtime = app.state.runtime
        async with runtime.sessions() as session:
            call_id = await session.scalar(select(Call.id).where(Call.call_sid == conversation))
            turns = (
                await session.execute(
                    select(CallTurn.seq, CallTurn.role, CallTurn.text)
                    .where(CallTurn.call_id == call_id)
                    .order_by(CallTurn.seq)
                )
            ).all()
    assert [t.seq for t in turns] == list(range(1, 23))  # 11 exchanges, each a caller and an agent turn
    assert [t.role for t in turns] == ["caller", "agent"] * 11
    # one turn at a time: every caller message is followed by the reply to it
    for caller_turn, agent_turn in zip(turns[::2], turns[1::2], strict=True):
        assert agent_turn.text.endswith(caller_turn.text), (caller_turn.text, agent_turn.text)
    assert len(runtime.conversations) == 0  # no lock left behind


async def test_migration_renumbers_old_duplicates_and_refuses_new_ones(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0005_admin")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO calls (id, call_sid, direction, status, started_at) "
                    "VALUES (1, 'chat-x', 'chat', 'in-progress', CURRENT_TIMESTAMP)"
                )
            )
            for turn_id, seq in [(1, 0), (2, 1), (3, 2), (4, 3), (5, 2), (6, 3)]:  # the old race's rows
                await conn.execute(
                    text(
                        "INSERT INTO call_turns (id, call_id, seq, role, text, interrupted, marks,"
                        " created_at) VALUES (:id, 1, :seq, 'caller', :t, false, '{}', CURRENT_TIMESTAMP)"
                    ),
                    {"id": turn_id, "seq": seq, "t": f"turn {turn_id}"},
                )
        await upgrade(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            rows = (await session.execute(select(CallTurn.id, CallTurn.seq).order_by(CallTurn.seq))).all()
        assert [tuple(r) for r in rows] == [(1, 1), (2, 2), (3, 3), (5, 4), (4, 5), (6, 6)]
        with pytest.raises(IntegrityError):
            async with transaction(sessions) as session:
                session.add(CallTurn(call_id=1, seq=3, role="agent", text="duplicate"))
    finally:
        await engine.dispose()
