"""Knowledge-base half of the SQL store: documents, their overlapping chunks, and chunk search.

``KnowledgeBaseMixin`` is mixed into ``sql.SQLMemoryStore``; it uses the store's transaction,
embedding and fused-search plumbing, so SQLite and PostgreSQL share it unchanged. Long texts are
chunked in a worker process (``ingest.chunk_document``); chunks are embedded and written in batches
of ``WRITE_BATCH``, each in its own short transaction, so a large document never holds the database
for long (a search during a reindex may see the document's new chunks only in part).
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
from phone_agent.memory.ingest import chunk_document
from phone_agent.memory.jobs import Progress
from phone_agent.memory.search import query_terms
from phone_agent.storage.tables import KnowledgeChunk, KnowledgeDocument

WRITE_BATCH = 256  # chunks embedded and written per transaction


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
        self,
        *,
        title: str,
        text: str,
        content_type: str = "text/plain",
        source_name: str | None = None,
        chunks: list[str] | None = None,
        progress: Progress | None = None,
    ) -> KnowledgeDocumentInfo:
        """Store, chunk, embed and index a document; the same text again returns the stored one.

        ``chunks``: the text already cut (by the upload's worker); ``progress(done, total)`` in chunks.
        """
        digest = hashlib.sha256(text.encode()).hexdigest()
        async with self.transaction() as session:
            same = (
                await session.execute(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest))
            ).scalar()
            if same is not None:
                return await _document_info(session, same)
        chunks = chunks if chunks is not None else await chunk_document(text)
        async with self.transaction() as session:
            document = KnowledgeDocument(
                title=title, source_name=source_name, content_type=content_type, content=text, sha256=digest
            )
            session.add(document)
            await session.flush()
            document_id = document.id
        await self._write_chunks(document_id, chunks, progress)
        async with self.transaction() as session:
            stored = await session.get(KnowledgeDocument, document_id)
            assert stored is not None
            return await _document_info(session, stored)

    async def _write_chunks(
        self, document_id: int, chunks: list[str], progress: Progress | None, *, replace: bool = False
    ) -> None:
        """Embed and insert ``chunks`` in batches (replacing the document's old chunks first)."""
        if replace and not chunks:
            async with self.transaction() as session:
                await session.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
        for start in range(0, len(chunks), WRITE_BATCH):
            batch = chunks[start : start + WRITE_BATCH]
            vectors = await self._embed(batch)
            async with self.transaction() as session:
                if replace and start == 0:
                    await session.execute(
                        delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id)
                    )
                await self._insert_chunks(session, document_id, batch, vectors, first_seq=start)
            if progress is not None:
                progress(start + len(batch), len(chunks))

    async def _insert_chunks(
        self,
        session: AsyncSession,
        document_id: int,
        chunks: list[str],
        vectors: list[np.ndarray] | None,
        *,
        first_seq: int = 0,
    ) -> None:
        rows = [
            {"document_id": document_id, "seq": first_seq + i, "text": chunk}
            for i, chunk in enumerate(chunks)
        ]
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

    async def reindex_documents(
        self, document_id: int | None = None, progress: Progress | None = None
    ) -> int:
        """Re-chunk and re-embed one document or all of them; returns the chunks written.

        ``progress(done, total)`` counts documents.
        """
        async with self.transaction() as session:
            query = select(KnowledgeDocument.id)
            if document_id is not None:
                query = query.where(KnowledgeDocument.id == document_id)
            ids = list((await session.execute(query.order_by(KnowledgeDocument.id))).scalars())
        written = 0
        for index, doc_id in enumerate(ids):
            async with self.transaction() as session:  # one document's text in memory at a time
                content = await session.scalar(
                    select(KnowledgeDocument.content).where(KnowledgeDocument.id == doc_id)
                )
            if content is not None:
                chunks = await chunk_document(content)
                await self._write_chunks(doc_id, chunks, None, replace=True)
                written += len(chunks)
            if progress is not None:
                progress(index + 1, len(ids))
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
