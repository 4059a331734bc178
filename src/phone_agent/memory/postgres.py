"""``PostgresMemoryStore``: full-text search (tsvector + GIN) and pgvector (HNSW, cosine).

Migration 0002 adds a generated ``search`` tsvector column everywhere and, when the server has the
pgvector extension, ``embedding vector(1536)`` with an HNSW index. Without pgvector the store runs
lexical-only (``vectors_available()`` is False) — a plain PostgreSQL works, just without vectors.
One caller's memories are few, so their vector search is an exact scan of that caller's rows; the
HNSW index serves the searches over everything (knowledge base, all memories).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.memory.sql import SQLMemoryStore


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form: ``[0.1,0.2,...]``."""
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


class PostgresMemoryStore(SQLMemoryStore):
    """Caller memory + knowledge base on PostgreSQL."""

    _vectors: bool | None = None

    async def vectors_available(self) -> bool:
        if self._vectors is None:
            async with self.engine.connect() as conn:
                found = await conn.scalar(
                    text(
                        "SELECT count(*) FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = 'memories' "
                        "AND column_name = 'embedding'"
                    )
                )
            self._vectors = bool(found)
        return self._vectors

    async def lexical_ids(
        self, session: AsyncSession, table: str, terms: list[str], caller_id: int | None, k: int
    ) -> list[int]:
        owner = " AND caller_id = :caller_id" if caller_id is not None and table == "memories" else ""
        sql = (
            f"SELECT id FROM {table}, to_tsquery('english', :query) q "
            f"WHERE search @@ q{owner} ORDER BY ts_rank_cd(search, q) DESC, id LIMIT :k"
        )
        rows = await session.execute(text(sql), {"query": " | ".join(terms), "caller_id": caller_id, "k": k})
        return [row[0] for row in rows]

    async def vector_ids(
        self, session: AsyncSession, table: str, vector: np.ndarray, caller_id: int | None, k: int
    ) -> list[int]:
        params = {"query": vector_literal(vector), "caller_id": caller_id, "k": k}
        if caller_id is not None and table == "memories":
            sql = (
                "WITH mine AS MATERIALIZED (SELECT id, embedding FROM memories "
                "WHERE caller_id = :caller_id AND embedding IS NOT NULL) "
                "SELECT id, embedding <=> CAST(:query AS vector) AS d FROM mine ORDER BY d LIMIT :k"
            )
        else:
            sql = (
                f"SELECT id, embedding <=> CAST(:query AS vector) AS d FROM {table} "
                "ORDER BY embedding <=> CAST(:query AS vector) LIMIT :k"
            )
        rows = await session.execute(text(sql), params)
        return [row[0] for row in rows if row[1] is not None and 1.0 - row[1] >= self.min_similarity]

    embedding_placeholder = "CAST(:embedding AS vector)"

    def embedding_value(self, vector: np.ndarray) -> str:
        return vector_literal(vector)
