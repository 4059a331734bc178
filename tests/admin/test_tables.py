"""Migration 0005: the admin account and session tables on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import AdminAccount, AdminSession, utcnow


async def test_admin_tables_round_trip(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    try:
        expires = utcnow() + timedelta(hours=1)
        async with transaction(sessions) as s:
            s.add(AdminAccount(id=1, password_hash="$argon2id$x", password_from="env"))
            s.add(
                AdminSession(token_hash="a" * 64, csrf_token="c" * 43, client="192.0.2.1", expires_at=expires)
            )
        async with sessions() as s:
            account = await s.get(AdminAccount, 1)
            row = (await s.execute(select(AdminSession))).scalar_one()
        assert account is not None and account.password_from == "env"
        assert row.expires_at == expires.replace(microsecond=row.expires_at.microsecond)
        assert row.expires_at.tzinfo is not None
    finally:
        await engine.dispose()
