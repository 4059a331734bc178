"""The MemoryStore the settings ask for.

``memory_backend=local`` → the in-process store on the app's database (SQLite or PostgreSQL by
``database_url``); ``memory_backend=http`` → ``HTTPMemoryStore`` talking to the memory service at
``memory_url`` with a durable outbox in ``data_dir``. The app's ``Services`` builds them once per
Settings (``services.py``); these functions only build.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from phone_agent.config import Settings
from phone_agent.http_pool import HttpPool
from phone_agent.memory.base import MemoryStore
from phone_agent.memory.embeddings import embedder_for
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.storage.db import create_engine

OUTBOX_FILE = "memory-outbox.sqlite3"


def local_store(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    http: HttpPool | None = None,
) -> SQLMemoryStore:
    """The in-process store for the database's dialect (on its own engine when none is given);
    ``http`` is the shared connection pool for its embedder, if any."""
    from phone_agent.memory.postgres import PostgresMemoryStore
    from phone_agent.memory.sqlite import SQLiteMemoryStore

    owns = engine is None
    if engine is None:
        engine = create_engine(settings.database_url)
    cls = SQLiteMemoryStore if engine.dialect.name == "sqlite" else PostgresMemoryStore
    return cls(engine=engine, sessions=sessions, embedder=embedder_for(settings, http=http), owns_engine=owns)


def build_memory_store(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    local: SQLMemoryStore | None = None,
) -> MemoryStore:
    """The store for ``settings.memory_backend`` (``local`` is reused for the local backend if given)."""
    if settings.memory_backend == "http":
        from phone_agent.memory.client import HTTPMemoryStore

        return HTTPMemoryStore(
            base_url=settings.memory_url,
            token=settings.secret("memory_service_token"),
            outbox_path=Path(settings.data_dir) / OUTBOX_FILE,
            timeout=settings.memory_timeout_seconds,
        )
    return local if local is not None else local_store(settings, engine=engine, sessions=sessions)
