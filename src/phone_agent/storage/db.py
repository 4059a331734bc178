"""Database engine and sessions: embedded SQLite by default, PostgreSQL via DATABASE_URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from phone_agent.errors import ConfigError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def normalise_url(url: str) -> str:
    """Accept the common spellings (postgres://, postgresql://, sqlite://) and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    driver = parsed.drivername
    if driver == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigError(
            f"database_url: driver {driver!r} is not supported; use sqlite+aiosqlite:///path.db "
            "or postgresql+asyncpg://user:pass@host/db."
        )
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    """True for the embedded SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another process's transaction


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
    # SQLAlchemy emits BEGIN itself (``_begin_immediate``), not the driver
    dbapi_connection.isolation_level = None


WRITE = {"sqlite_immediate": True}  # execution option of a transaction that will write


def _begin(connection: Any) -> None:
    """A writing SQLite transaction takes the write lock at its start (``BEGIN IMMEDIATE``).

    With several processes on one database (``serve --workers N``), a deferred transaction that
    reads, then writes, fails at once with "database is locked" when another process wrote in
    between (the busy timeout cannot help a stale read snapshot); an immediate one waits its turn
    (up to ``SQLITE_BUSY_TIMEOUT_MS``). Reads stay deferred: in WAL mode they never block a writer.
    """
    immediate = connection.get_execution_options().get("sqlite_immediate")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str) -> AsyncEngine:
    """An async engine for the URL; creates the SQLite file's folder when needed."""
    url = normalise_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        event.listen(engine.sync_engine, "begin", _begin)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session inside one writing transaction: committed on success, rolled back on error."""
    async with factory() as session, session.begin():
        await session.connection(execution_options=WRITE)  # SQLite: BEGIN IMMEDIATE (see ``_begin``)
        yield session


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
