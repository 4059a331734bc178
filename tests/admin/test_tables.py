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


async def _seed(settings) -> None:  # type: ignore[no-untyped-def]
    from phone_agent.runtime import Runtime
    from tests.admin.helpers import insert_calls

    runtime = Runtime.create(settings, "all")  # its own engine: the app's runs in the app's loop
    try:
        await upgrade(runtime.engine)
        await insert_calls(runtime)
    finally:
        await runtime.close()


def test_login_rate_limit_and_snapshot_on_both_databases(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from fastapi.testclient import TestClient

    from phone_agent.app import create_app
    from tests.admin.conftest import PASSWORD, log_in, login_csrf
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, DATABASE_URL=database_url)
    asyncio.run(_seed(settings))
    with TestClient(create_app(settings, migrate=True)) as client:
        log_in(client)
        status = client.get("/admin-status").json()
        assert status["latency"]["turns"] == 2 and status["latency"]["voice_to_voice_p50_ms"] == 720.0
        assert status["counts"]["active_calls"] >= 1
        assert "Yes, from ten to noon." in client.get("/admin/calls/CA-done").text
        found = client.get("/admin/api/callers", params={"q": "MARIA"}).json()["callers"]
        assert [c["phone"] for c in found] == ["+15551230001"]
        assert client.get("/admin").status_code == 200
        for _ in range(5):
            client.post("/admin/login", data={"password": "nope", "csrf_token": login_csrf(client)})
        blocked = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": login_csrf(client)})
        assert blocked.status_code == 429
