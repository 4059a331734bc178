"""``Outbox``: a durable queue of memory work in a small SQLite file, replayed until delivered.

The HTTP client appends every caller-memory write here *before* sending it and removes it only
after the memory service confirmed it, so a write made while the service is down (or while this
process crashes) survives and is replayed later. After-call learning whose read of the caller's
context failed is queued here too, as a ``LEARN`` job naming the call (the job, not only its write).

Order of replay: deletes first (a privacy delete must not wait behind a backlog), then everything
else oldest first. A delete supersedes what was queued for the same caller before it — those
entries are dropped when the delete is queued, so replaying deletes first never lets an older
write bring the caller's data back. Every entry carries a ``request_id`` that the client sends as
``Idempotency-Key``: the memory service applies one id once, so a replay (or two processes
replaying one file) changes nothing more. Entries are JSON; the file is written with the
synchronous ``sqlite3`` module in a worker thread (never blocking the event loop).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEARN = "LEARN"  # method of a learning job; its path is the call SID
SCHEMA = """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    request_id TEXT,
    phone TEXT,
    claimed_until REAL
)"""
ADDED_COLUMNS = {"request_id": "TEXT", "phone": "TEXT", "claimed_until": "REAL"}  # files of older versions
REPLAY_ORDER = "ORDER BY CASE method WHEN 'DELETE' THEN 0 ELSE 1 END, id"


@dataclass(frozen=True)
class OutboxEntry:
    """One queued request (or learning job)."""

    id: int
    method: str
    path: str
    body: Any
    request_id: str = ""
    phone: str | None = None


class Outbox:
    """Durable queue shared by every task of this process (and by processes sharing ``data_dir``)."""

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
            _upgrade(conn)
            self._conn = conn
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cursor = self._connection().execute(sql, params)
            rows = cursor.fetchall()
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
                rows = [(cursor.lastrowid, cursor.rowcount)]
            return rows

    def _append(self, method: str, path: str, body: Any, phone: str | None) -> int:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if method == "DELETE" and phone:  # supersedes what was queued for this caller
                    conn.execute("DELETE FROM outbox WHERE phone = ?", (phone,))
                cursor = conn.execute(
                    "INSERT INTO outbox (method, path, body, request_id, phone) VALUES (?, ?, ?, ?, ?)",
                    (method, path, json.dumps(body), uuid.uuid4().hex, phone),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid or 0)

    async def append(self, method: str, path: str, body: Any, *, phone: str | None = None) -> int:
        """Queue a request (``phone``: the caller it concerns, normalised); returns its id."""
        return await asyncio.to_thread(self._append, method, path, body, phone)

    async def head(self, n: int = 50, *, jobs: bool = True) -> list[OutboxEntry]:
        """The next ``n`` entries to replay (deletes first), without learning jobs unless ``jobs``."""
        where = "WHERE (claimed_until IS NULL OR claimed_until < ?)" + (
            "" if jobs else f" AND method != '{LEARN}'"
        )
        rows = await asyncio.to_thread(
            self._run,
            f"SELECT id, method, path, body, request_id, phone FROM outbox {where} {REPLAY_ORDER} LIMIT ?",
            (time.time(), n),
        )
        return [
            OutboxEntry(int(i), m, p, json.loads(b) if b else None, r or "", ph) for i, m, p, b, r, ph in rows
        ]

    async def claim(self, entry_id: int, seconds: float) -> bool:
        """Reserve an entry for ``seconds`` (a learning job runs once across processes)."""
        now = time.time()
        rows = await asyncio.to_thread(
            self._run,
            "UPDATE outbox SET claimed_until = ? "
            "WHERE id = ? AND (claimed_until IS NULL OR claimed_until < ?)",
            (now + seconds, entry_id, now),
        )
        return bool(rows[0][1])

    async def release(self, entry_id: int) -> None:
        """Give a claimed entry back (it failed; replay it later)."""
        await asyncio.to_thread(self._run, "UPDATE outbox SET claimed_until = NULL WHERE id = ?", (entry_id,))

    async def remove(self, entry_id: int) -> None:
        """Forget a delivered request."""
        await asyncio.to_thread(self._run, "DELETE FROM outbox WHERE id = ?", (entry_id,))

    async def pending(self, *, jobs: bool = True) -> int:
        """How many entries wait (learning jobs counted unless ``jobs`` is False)."""
        where = "" if jobs else f" WHERE method != '{LEARN}'"
        return int((await asyncio.to_thread(self._run, f"SELECT count(*) FROM outbox{where}"))[0][0])

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


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring an outbox file written by an older version up to this schema (ids for queued entries)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    for name, kind in ADDED_COLUMNS.items():
        if name not in columns:
            conn.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
    for (entry_id,) in conn.execute("SELECT id FROM outbox WHERE request_id IS NULL").fetchall():
        conn.execute("UPDATE outbox SET request_id = ? WHERE id = ?", (uuid.uuid4().hex, entry_id))
