"""``Outbox``: a durable, ordered queue of memory writes in a small SQLite file.

The HTTP client appends every write here *before* sending it and removes it only after the memory
service confirmed it, so a write made while the service is down (or while this process crashes)
survives and is replayed later, in the order it was made. Entries are JSON; the file is written with
the synchronous ``sqlite3`` module in a worker thread (never blocking the event loop).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)"""


@dataclass(frozen=True)
class OutboxEntry:
    """One queued request."""

    id: int
    method: str
    path: str
    body: Any


class Outbox:
    """Ordered durable queue (FIFO by id) shared by every task of this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an acknowledged append survives power loss
            conn.execute(SCHEMA)
            self._conn = conn
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cursor = self._connection().execute(sql, params)
            rows = cursor.fetchall()
            if sql.lstrip().upper().startswith("INSERT"):
                rows = [(cursor.lastrowid,)]
            return rows

    async def append(self, method: str, path: str, body: Any) -> int:
        """Queue a request; returns its id (ids increase in the order of appends)."""
        rows = await asyncio.to_thread(
            self._run,
            "INSERT INTO outbox (method, path, body) VALUES (?, ?, ?)",
            (method, path, json.dumps(body)),
        )
        return int(rows[0][0])

    async def head(self, n: int = 50) -> list[OutboxEntry]:
        """The oldest ``n`` queued requests, oldest first."""
        rows = await asyncio.to_thread(
            self._run, "SELECT id, method, path, body FROM outbox ORDER BY id LIMIT ?", (n,)
        )
        return [OutboxEntry(int(i), m, p, json.loads(b) if b else None) for i, m, p, b in rows]

    async def remove(self, entry_id: int) -> None:
        """Forget a delivered request."""
        await asyncio.to_thread(self._run, "DELETE FROM outbox WHERE id = ?", (entry_id,))

    async def pending(self) -> int:
        """How many requests wait for delivery."""
        return int((await asyncio.to_thread(self._run, "SELECT count(*) FROM outbox"))[0][0])

    async def contains(self, entry_id: int) -> bool:
        """True while ``entry_id`` is still queued."""
        rows = await asyncio.to_thread(self._run, "SELECT 1 FROM outbox WHERE id = ?", (entry_id,))
        return bool(rows)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
