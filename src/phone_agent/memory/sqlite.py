"""``SQLiteMemoryStore``: the embedded default. FTS5 (BM25) for lexical search; vectors via sqlite-vec.

Embeddings live in an ``embedding`` BLOB column (little-endian float32, migration 0002). When the
interpreter's ``sqlite3`` can load extensions, sqlite-vec's ``vec_distance_cosine`` ranks them in SQL;
some Python builds (e.g. pyenv's default) cannot load extensions at all, and then the same exact
cosine ranking is computed with numpy over the candidate rows in a worker thread. Both give the same
order; the SQL path avoids copying vectors out of SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import numpy as np
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.memory.embeddings import from_blob, to_blob
from phone_agent.memory.sql import SQLMemoryStore

_told_numpy: list[bool] = []
FTS_TABLES = {"memories": "memories_fts", "knowledge_chunks": "knowledge_chunks_fts"}


def _owner_filter(table: str, caller_id: int | None, alias: str = "t") -> str:
    return f" AND {alias}.caller_id = :caller_id" if caller_id is not None and table == "memories" else ""


class SQLiteMemoryStore(SQLMemoryStore):
    """Caller memory + knowledge base on the embedded SQLite database."""

    async def vectors_available(self) -> bool:
        return True  # the BLOB column always exists; ranking falls back to numpy without sqlite-vec

    async def prepare_session(self, session: AsyncSession) -> None:
        """Load sqlite-vec once into each new pooled connection (if this Python allows extensions)."""
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        if "sqlite_vec" in raw.info:
            return
        raw.info["sqlite_vec"] = await _load_sqlite_vec(raw.driver_connection)

    async def has_sqlite_vec(self, session: AsyncSession) -> bool:
        """True when this session's connection ranks vectors with sqlite-vec in SQL."""
        raw = await (await session.connection()).get_raw_connection()
        return bool(raw.info.get("sqlite_vec"))

    async def lexical_ids(
        self, session: AsyncSession, table: str, terms: list[str], caller_id: int | None, k: int
    ) -> list[int]:
        fts = FTS_TABLES[table]
        match = " OR ".join(f'"{term}"' for term in terms)
        rank = f"bm25({fts})"
        if table == "memories":  # text only; one caller = AND with its owner token (a short doclist)
            match = f"{{content}} : ({match})"
            if caller_id is not None:
                match = f"owner : c{int(caller_id)} AND {match}"
            rank = f"bm25({fts}, 1.0, 0.0)"
        sql = f"SELECT rowid FROM {fts} WHERE {fts} MATCH :match ORDER BY {rank} LIMIT :k"
        rows = await session.execute(text(sql), {"match": match, "k": k})
        return [row[0] for row in rows]

    async def vector_ids(
        self, session: AsyncSession, table: str, vector: np.ndarray, caller_id: int | None, k: int
    ) -> list[int]:
        where = f"t.embedding IS NOT NULL{_owner_filter(table, caller_id)}"
        params = {"caller_id": caller_id, "k": k, "query": to_blob(vector)}
        if await self.has_sqlite_vec(session):
            sql = (
                f"SELECT t.id, vec_distance_cosine(t.embedding, :query) AS d FROM {table} t "
                f"WHERE {where} ORDER BY d LIMIT :k"
            )
            ranked = await session.execute(text(sql), params)
            return [row[0] for row in ranked if 1.0 - row[1] >= self.min_similarity]
        rows = (
            await session.execute(text(f"SELECT t.id, t.embedding FROM {table} t WHERE {where}"), params)
        ).all()
        pairs = [(int(row[0]), bytes(row[1])) for row in rows]
        return await asyncio.to_thread(_nearest, pairs, vector, k, self.min_similarity)

    def embedding_value(self, vector: np.ndarray) -> Any:
        return to_blob(vector)


def _nearest(rows: list[tuple[int, bytes]], vector: np.ndarray, k: int, floor: float) -> list[int]:
    """Ids of the ``k`` rows most cosine-similar (≥ ``floor``) to ``vector`` (all unit length)."""
    if not rows:
        return []
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    matrix = np.vstack([from_blob(row[1]) for row in rows])
    scores = matrix @ vector.astype(np.float32)
    top = np.argsort(-scores, kind="stable")[:k]
    return [int(ids[i]) for i in top if scores[i] >= floor]


async def _load_sqlite_vec(driver_connection: object) -> bool:
    """Load the sqlite-vec extension into an aiosqlite connection; False if this build can't."""
    try:
        import sqlite_vec

        await driver_connection.enable_load_extension(True)  # type: ignore[attr-defined]
        await driver_connection.load_extension(sqlite_vec.loadable_path())  # type: ignore[attr-defined]
        await driver_connection.enable_load_extension(False)  # type: ignore[attr-defined]
        return True
    except (AttributeError, ImportError, sqlite3.Error) as exc:
        if not _told_numpy:
            _told_numpy.append(True)  # once per process, not per pooled connection
            logger.info("sqlite-vec not loadable ({}); vector ranking uses numpy", type(exc).__name__)
        return False
