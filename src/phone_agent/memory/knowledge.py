"""Knowledge-base half of the SQL store: documents, their overlapping chunks, and chunk search.

``KnowledgeBaseMixin`` is mixed into ``sql.SQLMemoryStore``; it uses the store's transaction,
embedding and fused-search plumbing, so SQLite and PostgreSQL share it unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from phone_agent.memory.base import KnowledgeDocumentInfo, KnowledgeHit
from phone_agent.memory.documents import chunk_text
from phone_agent.memory.search import query_terms
from phone_agent.storage.tables import KnowledgeChunk, KnowledgeDocument


class KnowledgeBaseMixin:
    """Add, list, re-index, delete and search knowledge documents."""

    if TYPE_CHECKING:  # provided by SQLMemoryStore

        def transaction(self) -> AbstractAsyncContextManager[AsyncSession]: ...

        async def _embed(self, texts: list[str]) -> list[np.ndarray] | None: ...

        async def _query_vector(self, query: str) -> np.ndarray | None: ...

        async def _fused(
            self,
            session: AsyncSession,
            table: str,
            terms: list[str],
            vector: np.ndarray | None,
            caller_id: int | None,
            limit: int,
        ) -> list[tuple[int, float]]: ...

        async def insert_rows(
            self,
            session: AsyncSession,
            table: str,
            rows: list[dict[str, Any]],
            vectors: Sequence[np.ndarray | None],
        ) -> None: ...

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        """Knowledge chunks relevant to ``query``, best first."""
        async with self.transaction() as session:
            if await session.scalar(select(KnowledgeChunk.id).limit(1)) is None:
                return []  # nothing to search: no query embedding on the call's critical path
        terms = query_terms(query)
        vector = await self._query_vector(query)
        async with self.transaction() as session:
            fused = await self._fused(session, "knowledge_chunks", terms, vector, None, limit)
            if not fused:
                return []
            rows = (
                await session.execute(
                    select(
                        KnowledgeChunk.id,
                        KnowledgeChunk.document_id,
                        KnowledgeDocument.title,
                        KnowledgeChunk.text,
                    )
                    .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                    .where(KnowledgeChunk.id.in_([i for i, _ in fused]))
                )
            ).all()
            by_id = {row.id: row for row in rows}
            return [
                KnowledgeHit(
                    document_id=by_id[i].document_id, title=by_id[i].title, text=by_id[i].text, score=s
                )
                for i, s in fused
                if i in by_id
            ]

    async def add_document(
        self, *, title: str, text: str, content_type: str = "text/plain", source_name: str | None = None
    ) -> KnowledgeDocumentInfo:
        """Store, chunk, embed and index a document; the same text again returns the stored one."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        async with self.transaction() as session:
            same = (
                await session.execute(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest))
            ).scalar()
            if same is not None:
                return await _document_info(session, same)
        chunks = chunk_text(text)
        vectors = await self._embed(chunks)
        async with self.transaction() as session:
            document = KnowledgeDocument(
                title=title, source_name=source_name, content_type=content_type, content=text, sha256=digest
            )
            session.add(document)
            await session.flush()
            await self._insert_chunks(session, document.id, chunks, vectors)
            return await _document_info(session, document)

    async def _insert_chunks(
        self, session: AsyncSession, document_id: int, chunks: list[str], vectors: list[np.ndarray] | None
    ) -> None:
        rows = [{"document_id": document_id, "seq": i, "text": chunk} for i, chunk in enumerate(chunks)]
        per_row: list[np.ndarray | None] = [*vectors] if vectors is not None else [None] * len(rows)
        await self.insert_rows(session, "knowledge_chunks", rows, per_row)

    async def list_documents(self) -> list[KnowledgeDocumentInfo]:
        """Every document with its chunk count, newest first."""
        async with self.transaction() as session:
            counts = (
                select(KnowledgeChunk.document_id, func.count().label("n"))
                .group_by(KnowledgeChunk.document_id)
                .subquery()
            )
            rows = (
                await session.execute(
                    select(KnowledgeDocument, counts.c.n)
                    .outerjoin(counts, counts.c.document_id == KnowledgeDocument.id)
                    .order_by(KnowledgeDocument.created_at.desc(), KnowledgeDocument.id.desc())
                )
            ).all()
            return [_info(document, n or 0) for document, n in rows]

    async def delete_document(self, document_id: int) -> bool:
        """Delete a document and its chunks."""
        async with self.transaction() as session:
            await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
            result = await session.execute(
                delete(KnowledgeDocument).where(KnowledgeDocument.id == document_id)
            )
            return bool(getattr(result, "rowcount", 0))

    async def reindex_documents(self, document_id: int | None = None) -> int:
        """Re-chunk and re-embed one document or all of them; returns the chunks written."""
        async with self.transaction() as session:
            query = select(KnowledgeDocument.id, KnowledgeDocument.content)
            if document_id is not None:
                query = query.where(KnowledgeDocument.id == document_id)
            documents = (await session.execute(query)).all()
        written = 0
        for doc_id, content in documents:
            chunks = chunk_text(content)
            vectors = await self._embed(chunks)
            async with self.transaction() as session:
                await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == doc_id))
                await self._insert_chunks(session, doc_id, chunks, vectors)
            written += len(chunks)
        return written


def _info(document: KnowledgeDocument, chunks: int) -> KnowledgeDocumentInfo:
    return KnowledgeDocumentInfo(
        id=document.id,
        title=document.title,
        source_name=document.source_name,
        content_type=document.content_type,
        chunks=chunks,
        created_at=document.created_at,
    )


async def _document_info(session: AsyncSession, document: KnowledgeDocument) -> KnowledgeDocumentInfo:
    count = await session.scalar(
        select(func.count()).select_from(KnowledgeChunk).where(KnowledgeChunk.document_id == document.id)
    )
    return _info(document, int(count or 0))
