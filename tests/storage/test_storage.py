"""Migrations and tables on embedded SQLite and on the real PostgreSQL of this machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select

from phone_agent.config import load_settings
from phone_agent.storage.db import create_engine, normalise_url, session_factory, transaction
from phone_agent.storage.migrate import current_revision, head_revision, upgrade
from phone_agent.storage.overrides import load_overrides, save_overrides
from phone_agent.storage.tables import AuditEntry, Call, Caller, CallTurn, Memory

EXPECTED_TABLES = {
    "callers",
    "calls",
    "call_turns",
    "memories",
    "knowledge_documents",
    "knowledge_chunks",
    "appointments",
    "messages",
    "config_overrides",
    "audit_log",
}


async def test_upgrade_creates_every_table(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert EXPECTED_TABLES <= tables
        await upgrade(engine)  # idempotent
    finally:
        await engine.dispose()


async def test_call_with_turns_round_trip_and_cascade_delete(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    try:
        started = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
        async with transaction(sessions) as s:
            caller = Caller(phone="+15551230001", name="Maria Lopez", profile={"topic": "home insurance"})
            call = Call(call_sid="CA123", caller=caller, from_number="+15551230001", started_at=started)
            call.turns.append(CallTurn(seq=0, role="caller", text="Hi", marks={"caller_stopped": 1200}))
            call.turns.append(
                CallTurn(
                    seq=1,
                    role="agent",
                    text="Hello!",
                    planned_text="Hello! How",
                    interrupted=True,
                    marks={"llm_first_token": 1500.5},
                )
            )
            s.add(call)
            await s.flush()
            s.add(Memory(caller_id=caller.id, content="Asked about home insurance", key="topic"))
        async with transaction(sessions) as s:
            call = (await s.execute(select(Call).where(Call.call_sid == "CA123"))).scalar_one()
            assert call.started_at == started and call.started_at.tzinfo is not None
            turns = (await s.execute(select(CallTurn).order_by(CallTurn.seq))).scalars().all()
            assert [t.text for t in turns] == ["Hi", "Hello!"]
            assert turns[1].marks == {"llm_first_token": 1500.5} and turns[1].interrupted
            caller = (await s.execute(select(Caller))).scalar_one()
            assert caller.profile == {"topic": "home insurance"}
            await s.delete(caller)
        async with transaction(sessions) as s:
            for table in (Caller, Call, CallTurn, Memory):
                assert (await s.execute(select(table))).first() is None, table.__tablename__
    finally:
        await engine.dispose()


async def test_admin_overrides_are_stored_validated_and_audited(database_url: str, tmp_path) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    settings = load_settings({"ELEVENLABS_API_KEY": "el-secret-0123456789"}, config_path=_empty(tmp_path))
    try:
        async with transaction(sessions) as s:
            new = await save_overrides(
                s,
                settings,
                {"tts_stability": 0.25, "elevenlabs_api_key": "el-new-secret-99999"},
                actor="owner",
            )
        assert new.tts_stability == 0.25 and new.source_of("tts_stability") == "admin"
        async with transaction(sessions) as s:
            assert await load_overrides(s) == {
                "tts_stability": 0.25,
                "elevenlabs_api_key": "el-new-secret-99999",
            }
            audit = (await s.execute(select(AuditEntry).order_by(AuditEntry.target))).scalars().all()
        by_target = {a.target: a for a in audit}
        assert (
            by_target["tts_stability"].old_value == "0.5" and by_target["tts_stability"].new_value == "0.25"
        )
        assert by_target["elevenlabs_api_key"].new_value == "el-…9999"
        assert "el-secret-0123456789" not in (by_target["elevenlabs_api_key"].old_value or "")
        with pytest.raises(Exception, match="tts_stability"):
            async with transaction(sessions) as s:
                await save_overrides(s, settings, {"tts_stability": 3}, actor="owner")
        async with transaction(sessions) as s:
            assert (await load_overrides(s))["tts_stability"] == 0.25
    finally:
        await engine.dispose()


def _empty(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{}")
    return path


def test_database_url_spellings() -> None:
    assert normalise_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    with pytest.raises(Exception, match="not supported"):
        normalise_url("mysql://u@h/db")


async def test_utc_datetime_comparisons(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    try:
        now = datetime.now(UTC)
        async with transaction(sessions) as s:
            s.add(Call(call_sid="CAold", started_at=now - timedelta(days=2)))
            s.add(Call(call_sid="CAnew", started_at=now))
        async with transaction(sessions) as s:
            recent = (
                await s.execute(select(Call.call_sid).where(Call.started_at > now - timedelta(days=1)))
            ).all()
        assert [r[0] for r in recent] == ["CAnew"]
    finally:
        await engine.dispose()
