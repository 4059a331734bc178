"""``memory_store_for(settings, runtime)``: the MemoryStore the settings ask for.

``memory_backend=local`` → the in-process store on the app's database (SQLite or PostgreSQL by
``database_url``); ``memory_backend=http`` → ``HTTPMemoryStore`` talking to the memory service at
``memory_url`` with a durable outbox in ``data_dir``. With a runtime the store is made once and kept
in ``runtime.extras["memory_store"]`` (closed with the runtime).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from phone_agent.config import Settings
from phone_agent.memory.base import MemoryStore
from phone_agent.memory.embeddings import embedder_for
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.storage.db import create_engine

if TYPE_CHECKING:
    from phone_agent.runtime import Runtime

STORE_KEY = "memory_store"
LOCAL_STORE_KEY = "memory_local_store"
OUTBOX_FILE = "memory-outbox.sqlite3"


def local_store(
    settings: Settings, engine: AsyncEngine | None = None, runtime: Runtime | None = None
) -> SQLMemoryStore:
    """The in-process store for the database's dialect (a new engine when none is given)."""
    from phone_agent.memory.postgres import PostgresMemoryStore
    from phone_agent.memory.sqlite import SQLiteMemoryStore

    owns = engine is None and runtime is None
    if runtime is not None:
        engine = runtime.engine
    if engine is None:
        engine = create_engine(settings.database_url)
    cls = SQLiteMemoryStore if engine.dialect.name == "sqlite" else PostgresMemoryStore
    return cls(
        engine=engine,
        sessions=runtime.sessions if runtime is not None else None,
        embedder=embedder_for(settings),
        owns_engine=owns,
    )


def memory_store_for(
    settings: Settings, runtime: Runtime | None = None, *, engine: AsyncEngine | None = None
) -> MemoryStore:
    """The store for ``settings.memory_backend`` (cached on the runtime when one is given)."""
    if runtime is not None and STORE_KEY in runtime.extras:
        return runtime.extras[STORE_KEY]
    store: MemoryStore
    if settings.memory_backend == "http":
        from phone_agent.memory.client import HTTPMemoryStore

        store = HTTPMemoryStore(
            base_url=settings.memory_url,
            token=settings.secret("memory_service_token"),
            outbox_path=Path(settings.data_dir) / OUTBOX_FILE,
            timeout=settings.memory_timeout_seconds,
        )
    else:
        store = local_store(settings, engine, runtime)
    if runtime is not None:
        runtime.extras[STORE_KEY] = store
    return store


def service_store_for(runtime: Runtime) -> SQLMemoryStore:
    """The store on this process's own database (what the memory service serves), cached."""
    store = runtime.extras.get(LOCAL_STORE_KEY)
    if store is None:
        cached = runtime.extras.get(STORE_KEY)
        store = (
            cached if isinstance(cached, SQLMemoryStore) else local_store(runtime.settings, runtime=runtime)
        )
        runtime.extras[LOCAL_STORE_KEY] = store
    return store
