"""``SQLMemoryStore``: the in-process store on the app's database, shared by SQLite and PostgreSQL.

This module holds caller memory (profiles, merge, retrieval, privacy delete, retention) and the
search plumbing; the knowledge-base methods come from ``knowledge.KnowledgeBaseMixin``.

Profiles, memories and knowledge documents are plain ORM rows (``storage.tables``); the dialect
subclasses (``memory.sqlite``, ``memory.postgres``) add only the two searches — lexical and vector —
and how a vector is written. Retrieval fuses both rankings (``search.fuse_rankings``); with no
embedder, or when the query embedding fails or is slow, it is lexical-only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

import numpy as np
from loguru import logger
from sqlalchemy import bindparam, delete, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from phone_agent.config import MAX_RETENTION_DAYS
from phone_agent.errors import ProviderError
from phone_agent.memory.base import CallerContext, MemoryItem
from phone_agent.memory.embeddings import OpenAIEmbedder, embed_or_none
from phone_agent.memory.knowledge import KnowledgeBaseMixin
from phone_agent.memory.search import fuse_rankings, normalise_fact, query_terms
from phone_agent.storage.db import session_factory, transaction
from phone_agent.storage.outbound import delete_outbound_of
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import (
    Appointment,
    Call,
    Caller,
    CallTurn,
    Memory,
    Message,
    UTCDateTime,
    utcnow,
)

CANDIDATES = 4  # each search returns limit * CANDIDATES ids before fusion
MIN_SIMILARITY = 0.2  # cosine below this is unrelated text for text-embedding-3: not a hit


class SQLMemoryStore(KnowledgeBaseMixin):
    """Caller memory + knowledge base on a SQLAlchemy async engine (subclassed per dialect)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        embedder: OpenAIEmbedder | None = None,
        query_embedding_timeout: float = 1.5,
        min_similarity: float = MIN_SIMILARITY,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.sessions = sessions or session_factory(engine)
        self.embedder = embedder
        self.query_embedding_timeout = query_embedding_timeout
        self.min_similarity = min_similarity
        self.owns_engine = owns_engine

    # -- dialect hooks ---------------------------------------------------------------------------
    async def vectors_available(self) -> bool:
        """True when the schema has embedding columns (and the dialect can search them)."""
        raise NotImplementedError

    async def prepare_session(self, session: AsyncSession) -> None:
        """Per-transaction setup (SQLite loads sqlite-vec into new connections)."""

    async def lexical_ids(
        self, session: AsyncSession, table: str, terms: list[str], caller_id: int | None, k: int
    ) -> list[int]:
        """Row ids of ``table`` matching ``terms``, best first."""
        raise NotImplementedError

    async def vector_ids(
        self, session: AsyncSession, table: str, vector: np.ndarray, caller_id: int | None, k: int
    ) -> list[int]:
        """Row ids of ``table`` nearest to ``vector`` (cosine ≥ ``min_similarity``), best first."""
        raise NotImplementedError

    embedding_placeholder = ":embedding"  # how a bound vector is written in SQL (PostgreSQL casts)

    def embedding_value(self, vector: np.ndarray) -> Any:
        """A vector as the driver binds it."""
        raise NotImplementedError

    async def write_vectors(
        self, session: AsyncSession, table: str, rows: list[tuple[int, np.ndarray]]
    ) -> None:
        """Store embeddings for existing rows of ``table``."""
        await session.execute(
            text(f"UPDATE {table} SET embedding = {self.embedding_placeholder} WHERE id = :id"),
            [{"id": row_id, "embedding": self.embedding_value(vector)} for row_id, vector in rows],
        )

    async def insert_rows(
        self,
        session: AsyncSession,
        table: str,
        rows: list[dict[str, Any]],
        vectors: Sequence[np.ndarray | None],
    ) -> None:
        """Insert rows with their embeddings in the same statement (one row version, one index entry)."""
        if not rows:
            return
        columns = list(rows[0])
        pairs = list(zip(rows, vectors, strict=True))
        # consecutive runs with / without a vector, so ids keep the order of ``rows``
        for with_vector, run in groupby(pairs, key=lambda pair: pair[1] is not None):
            batch = [
                {**row, "embedding": self.embedding_value(v)} if v is not None else row for row, v in run
            ]
            names = columns + ["embedding"] if with_vector else columns
            values = [f":{c}" for c in columns] + ([self.embedding_placeholder] if with_vector else [])
            statement = text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(values)})")
            stamps = [bindparam(c, type_=UTCDateTime()) for c in columns if c in ("created_at", "updated_at")]
            await session.execute(statement.bindparams(*stamps), batch)

    # -- sessions ----------------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one (writing) transaction, prepared for search."""
        async with transaction(self.sessions) as session:
            await self.prepare_session(session)
            yield session

    async def _embed(self, texts: list[str]) -> list[np.ndarray] | None:
        """Vectors for texts to store, or None (no embedder / no vector column / provider down)."""
        if not texts or self.embedder is None or not await self.vectors_available():
            return None
        try:
            return await self.embedder.embed(texts)
        except ProviderError as exc:  # stored without vectors: lexical search still finds them
            logger.warning("memory: storing without embeddings: {}", exc)
            return None

    async def _query_vector(self, query: str) -> np.ndarray | None:
        if self.embedder is None or not await self.vectors_available():
            return None
        return await embed_or_none(self.embedder, query, self.query_embedding_timeout)

    # -- caller memory -----------------------------------------------------------------------------
    async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
        """Profile and the most recently confirmed memories of a caller."""
        phone = normalise_phone(phone)
        async with self.transaction() as session:
            caller = await _caller_by_phone(session, phone)
            if caller is None:
                return CallerContext(phone=phone)
            rows = (
                await session.execute(
                    select(Memory, Call.call_sid)
                    .outerjoin(Call, Call.id == Memory.call_id)
                    .where(Memory.caller_id == caller.id)
                    .order_by(Memory.updated_at.desc(), Memory.id.desc())
                    .limit(limit)
                )
            ).all()
            return CallerContext(
                phone=phone,
                name=caller.name,
                profile=dict(caller.profile or {}),
                memories=[_item(memory, call_sid) for memory, call_sid in rows],
                known=True,
            )

    async def store_memories(
        self,
        phone: str,
        items: list[MemoryItem],
        *,
        name: str | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        """Merge facts into a caller's memory: same key → replaced by the newer, same text → kept once."""
        phone = normalise_phone(phone)
        items = [item for item in items if item.content.strip()]
        vectors = await self._embed([item.content for item in items])
        try:
            await self._merge(phone, items, vectors, name, profile)
        except IntegrityError:  # the same new caller written by two calls at once: merge again
            await self._merge(phone, items, vectors, name, profile)

    async def _merge(
        self,
        phone: str,
        items: list[MemoryItem],
        vectors: list[np.ndarray] | None,
        name: str | None,
        profile: dict[str, Any] | None,
    ) -> None:
        vector_of: dict[int, np.ndarray] = {}  # id(Memory) -> vector of its (new) content
        fresh: list[Memory] = []  # inserted at the end with their vectors, one row version each
        async with self.transaction() as session:
            caller = await _caller_by_phone(session, phone)
            if caller is None:
                caller = Caller(phone=phone, profile={})
                session.add(caller)
                await session.flush()
            _merge_profile(caller, name, profile)
            existing = list(
                (await session.execute(select(Memory).where(Memory.caller_id == caller.id))).scalars()
            )
            by_key = {m.key: m for m in existing if m.key}
            by_text = {normalise_fact(m.content): m for m in existing}
            call_ids = await _call_ids(session, {i.call_sid for i in items if i.call_sid})
            for index, item in enumerate(items):
                when = item.created_at or utcnow()
                call_id = call_ids.get(item.call_sid or "")
                current = by_key.get(item.key) if item.key else None
                current = current or by_text.get(normalise_fact(item.content))
                if current is not None:
                    if _as_utc(when) < _as_utc(current.updated_at):
                        continue  # an older fact never overwrites a newer one
                    changed = normalise_fact(current.content) != normalise_fact(item.content)
                    if changed:  # the same fact reworded keeps its first wording
                        current.content, current.kind = item.content, item.kind
                    current.key = item.key or current.key
                    current.call_id = call_id or current.call_id
                    current.updated_at = when
                    memory = current
                else:
                    changed = True
                    memory = Memory(
                        caller_id=caller.id,
                        call_id=call_id,
                        kind=item.kind,
                        key=item.key,
                        content=item.content,
                        created_at=when,
                        updated_at=when,
                    )
                    fresh.append(memory)
                by_text[normalise_fact(item.content)] = memory
                if item.key:
                    by_key[item.key] = memory
                if changed and vectors is not None:
                    vector_of[id(memory)] = vectors[index]
            await session.flush()
            updated = [(m.id, vector_of[id(m)]) for m in existing if id(m) in vector_of]
            if updated:
                await self.write_vectors(session, "memories", updated)
            columns = ("caller_id", "call_id", "kind", "key", "content", "created_at", "updated_at")
            rows = [{c: getattr(m, c) for c in columns} for m in fresh]
            await self.insert_rows(session, "memories", rows, [vector_of.get(id(m)) for m in fresh])

    async def retrieve(self, phone: str | None, query: str, *, limit: int = 5) -> list[MemoryItem]:
        """Memories relevant to ``query`` (one caller's, or everyone's when ``phone`` is None)."""
        terms = query_terms(query)
        vector = await self._query_vector(query)
        async with self.transaction() as session:
            caller_id = None
            if phone is not None:
                caller = await _caller_by_phone(session, normalise_phone(phone))
                if caller is None:
                    return []
                caller_id = caller.id
            fused = await self._fused(session, "memories", terms, vector, caller_id, limit)
            if not fused:
                return []
            rows = (
                await session.execute(
                    select(Memory, Call.call_sid)
                    .outerjoin(Call, Call.id == Memory.call_id)
                    .where(Memory.id.in_([i for i, _ in fused]))
                )
            ).all()
            by_id = {memory.id: (memory, sid) for memory, sid in rows}
            return [_item(*by_id[i]).model_copy(update={"score": score}) for i, score in fused if i in by_id]

    async def _fused(
        self,
        session: AsyncSession,
        table: str,
        terms: list[str],
        vector: np.ndarray | None,
        caller_id: int | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        k = max(limit * CANDIDATES, 20)
        rankings: list[Sequence[int]] = []
        if terms:
            rankings.append(await self.lexical_ids(session, table, terms, caller_id, k))
        if vector is not None:
            rankings.append(await self.vector_ids(session, table, vector, caller_id, k))
        return fuse_rankings(rankings)[:limit]

    async def delete_caller(self, phone: str) -> bool:
        """Delete the caller's profile, memories, calls with their transcripts, appointments, messages."""
        phone = normalise_phone(phone)
        async with self.transaction() as session:
            caller = await _caller_by_phone(session, phone)
            caller_id = caller.id if caller else -1
            call_ids = list(
                (
                    await session.execute(
                        select(Call.id).where(
                            or_(
                                Call.caller_id == caller_id,
                                Call.from_number == phone,
                                (Call.to_number == phone) & (Call.direction == "outbound"),
                            )
                        )
                    )
                ).scalars()
            )
            deleted = 0
            statements = [
                delete(CallTurn).where(CallTurn.call_id.in_(call_ids)),
                delete(Memory).where(Memory.caller_id == caller_id),
                delete(Appointment).where(
                    or_(Appointment.caller_id == caller_id, Appointment.phone == phone)
                ),
                delete(Message).where(or_(Message.caller_id == caller_id, Message.phone == phone)),
                delete(Call).where(Call.id.in_(call_ids)),
                delete(Caller).where(Caller.id == caller_id),
            ]
            deleted += await delete_outbound_of(session, phone)  # before its calls (foreign key)
            for statement in statements:
                result = await session.execute(statement.execution_options(synchronize_session=False))
                deleted += int(getattr(result, "rowcount", 0) or 0)
        logger.info("memory: deleted caller data ({} rows)", deleted)
        return deleted > 0

    async def purge_expired(self, days: int) -> int:
        """Delete memories, calls (with transcripts) and idle callers older than ``days``."""
        if days <= 0 or days > MAX_RETENTION_DAYS:  # beyond a century nothing is old enough
            return 0
        cutoff = utcnow() - timedelta(days=days)
        async with self.transaction() as session:
            old_calls = select(Call.id).where(Call.started_at < cutoff)
            active = select(Call.caller_id).where(Call.caller_id.is_not(None))
            statements = [
                delete(CallTurn).where(CallTurn.call_id.in_(old_calls)),
                delete(Call).where(Call.started_at < cutoff),
                delete(Memory).where(Memory.updated_at < cutoff),
                delete(Caller).where(
                    func.coalesce(Caller.last_call_at, Caller.updated_at) < cutoff, Caller.id.not_in(active)
                ),
            ]
            deleted = 0
            for statement in statements:
                result = await session.execute(statement.execution_options(synchronize_session=False))
                deleted += int(getattr(result, "rowcount", 0) or 0)
        if deleted:
            logger.info("memory: retention ({} days) deleted {} rows", days, deleted)
        return deleted

    async def aclose(self) -> None:
        """Close the embedder (and the engine when this store created it)."""
        if self.embedder is not None:
            await self.embedder.aclose()
        if self.owns_engine:
            await self.engine.dispose()


async def _caller_by_phone(session: AsyncSession, phone: str) -> Caller | None:
    return (await session.execute(select(Caller).where(Caller.phone == phone))).scalar()


async def _call_ids(session: AsyncSession, call_sids: set[str]) -> dict[str, int]:
    if not call_sids:
        return {}
    rows = await session.execute(select(Call.call_sid, Call.id).where(Call.call_sid.in_(call_sids)))
    return {sid: call_id for sid, call_id in rows.all()}


def _merge_profile(caller: Caller, name: str | None, profile: dict[str, Any] | None) -> None:
    """Newer non-empty values win; empty ones never erase what is known."""
    if name and name.strip():
        caller.name = name.strip()
    if profile:
        merged = dict(caller.profile or {})
        merged.update({k: v for k, v in profile.items() if v not in (None, "", [], {})})
        caller.profile = merged
    caller.updated_at = utcnow()


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _item(memory: Memory, call_sid: str | None) -> MemoryItem:
    return MemoryItem(
        id=memory.id,
        content=memory.content,
        kind=memory.kind,
        key=memory.key,
        call_sid=call_sid,
        created_at=memory.updated_at,
    )
