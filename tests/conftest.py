"""Shared fixtures: settings built from an explicit env, databases on SQLite and real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from phone_agent.config import Settings, load_settings

pytest_plugins = ["pytester", "tests.asyncio_guard", "tests.fakes.pytest_plugin", "tests.running_agent"]

PG_ADMIN_URL = os.environ.get("PHONE_AGENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings from an explicit environment only (no config.json, no os.environ)."""
    base = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/test.db", "PHONE_AGENT_DATA_DIR": str(tmp_path)}
    base.update(env)
    return load_settings(base, config_path=None if "PHONE_AGENT_CONFIG" in env else _no_config(tmp_path))


def _no_config(tmp_path: Path) -> Path:
    path = tmp_path / "empty-config.json"
    if not path.exists():
        path.write_text("{}")
    return path


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the machine's server, dropped after the session."""
    name = f"phone_agent_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on embedded SQLite and on real PostgreSQL (schema reset per test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
        return
    url = request.getfixturevalue("postgres_url")
    asyncio.run(_reset_pg(url))
    yield url


async def _reset_pg(url: str) -> None:
    from sqlalchemy import text

    from phone_agent.storage.db import create_engine

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings on a per-test SQLite database."""
    return make_settings(tmp_path)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[object]:
    """A migrated Runtime for the test's settings."""
    from phone_agent.runtime import Runtime
    from phone_agent.storage.migrate import upgrade

    rt = Runtime.create(settings, "all")
    await upgrade(rt.engine)
    yield rt
    await rt.close()
