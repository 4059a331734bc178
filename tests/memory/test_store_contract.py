"""The MemoryStore contract, run on SQLite, PostgreSQL without pgvector and PostgreSQL with pgvector."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from phone_agent.memory.base import MemoryItem, MemoryStore
from phone_agent.memory.embeddings import EMBEDDING_DIMENSIONS, OpenAIEmbedder
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Appointment, Call, Caller, CallTurn, Memory, Message
from tests.fakes.openai import FakeOpenAI
from tests.memory.conftest import local_store_with

MARIA = "+15551230001"
JOHN = "+15551230002"


async def test_store_is_a_memory_store(store: SQLMemoryStore) -> None:
    assert isinstance(store, MemoryStore)


async def test_unknown_caller_has_an_empty_context(store: SQLMemoryStore) -> None:
    context = await store.caller_context(MARIA)
    assert context.model_dump() == {
        "phone": MARIA,
        "name": None,
        "profile": {},
        "memories": [],
        "known": False,
    }
    assert await store.retrieve(MARIA, "home insurance") == []


async def test_store_then_context_has_profile_and_newest_memories_first(store: SQLMemoryStore) -> None:
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    await store.store_memories(
        "+1 (555) 123-0001",  # formatting is normalised
        [
            MemoryItem(content="Has a dog named Rex.", created_at=t0),
            MemoryItem(
                content="Prefers calls after 5 pm.", key="call_time", created_at=t0 + timedelta(hours=1)
            ),
        ],
        name="Maria Lopez",
        profile={"topic": "home insurance", "product_interest": None},
    )
    context = await store.caller_context(MARIA)
    assert context.known and context.name == "Maria Lopez"
    assert context.profile == {"topic": "home insurance"}
    assert [m.content for m in context.memories] == ["Prefers calls after 5 pm.", "Has a dog named Rex."]
    assert context.memories[0].key == "call_time"
    assert "Name: Maria Lopez." in context.summary() and "Topic: home insurance." in context.summary()


async def test_merge_same_key_newer_wins_same_text_once_older_ignored(store: SQLMemoryStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    await store.store_memories(
        MARIA, [MemoryItem(content="Policy renews in March.", key="renewal", created_at=t0)]
    )
    await store.store_memories(
        MARIA,
        [
            MemoryItem(content="Policy renews in April.", key="renewal", created_at=t0 + timedelta(days=2)),
            MemoryItem(content="policy renews in april", created_at=t0 + timedelta(days=2)),  # same text
        ],
        profile={"topic": "renewal"},
    )
    # a replayed older write must not undo the newer fact
    await store.store_memories(
        MARIA, [MemoryItem(content="Policy renews in March.", key="renewal", created_at=t0)]
    )
    await store.store_memories(MARIA, [], profile={"topic": ""}, name=None)  # empty values never erase
    context = await store.caller_context(MARIA, limit=10)
    assert [(m.key, m.content) for m in context.memories] == [("renewal", "Policy renews in April.")]
    assert context.profile == {"topic": "renewal"}


async def test_retrieve_finds_the_callers_relevant_memory_only(store: SQLMemoryStore) -> None:
    await store.store_memories(
        MARIA,
        [
            MemoryItem(content="Asked about home insurance for a house in Austin."),
            MemoryItem(content="Her daughter starts college in the fall."),
            MemoryItem(content="Prefers email over phone calls."),
        ],
    )
    await store.store_memories(JOHN, [MemoryItem(content="Wants car insurance for a new truck.")])
    hits = await store.retrieve(MARIA, "what about my insurance for the house?", limit=2)
    assert hits[0].content == "Asked about home insurance for a house in Austin."
    assert all("truck" not in h.content for h in hits)
    assert hits[0].score > 0
    everyone = await store.retrieve(None, "insurance", limit=5)
    assert {h.content for h in everyone} >= {
        "Asked about home insurance for a house in Austin.",
        "Wants car insurance for a new truck.",
    }
    assert await store.retrieve("+15550000000", "insurance") == []


async def test_lexical_only_store_works_without_embeddings(store: SQLMemoryStore) -> None:
    lexical = local_store_with(store.engine, None)
    await lexical.store_memories(JOHN, [MemoryItem(content="Wants roadside assistance added.")])
    hits = await lexical.retrieve(JOHN, "roadside assistance")
    assert [h.content for h in hits] == ["Wants roadside assistance added."]
    await lexical.add_document(title="Hours", text="We are open Monday to Friday, nine to five.")
    assert [h.title for h in await lexical.search_knowledge("open on Friday?")] == ["Hours"]


async def test_vectors_are_stored_and_ranked_by_cosine(
    store: SQLMemoryStore, openai_fake: FakeOpenAI
) -> None:
    if not await store.vectors_available():
        pytest.skip("this PostgreSQL has no pgvector extension: the store runs lexical-only (tested above)")
    await store.store_memories(
        MARIA,
        [
            MemoryItem(content="blue ocean waves"),
            MemoryItem(content="red mountain fire"),
            MemoryItem(content="green forest trees"),
        ],
    )
    assert openai_fake.embedding_requests[-1]["input"] == [
        "blue ocean waves",
        "red mountain fire",
        "green forest trees",
    ]
    assert openai_fake.embedding_requests[-1]["dimensions"] == EMBEDDING_DIMENSIONS
    assert isinstance(store.embedder, OpenAIEmbedder)
    query = await store.embedder.embed_one("mountain fire")
    async with store.transaction() as session:
        ids = await store.vector_ids(session, "memories", query, None, 3)
        contents = {
            row.id: row.content
            for row in (await session.execute(text("SELECT id, content FROM memories"))).all()
        }
        missing = await session.scalar(text("SELECT count(*) FROM memories WHERE embedding IS NULL"))
    assert missing == 0
    if store.engine.dialect.name == "sqlite":  # sqlite-vec ranks in SQL wherever Python can load it
        async with store.transaction() as session:
            loaded = await store.has_sqlite_vec(session)  # type: ignore[attr-defined]
        assert loaded == hasattr(sqlite3.Connection, "enable_load_extension")
    assert contents[ids[0]] == "red mountain fire"
    # hybrid retrieval puts the memory both searches rank first on top
    hits = await store.retrieve(MARIA, "fire", limit=1)
    assert hits[0].content == "red mountain fire"


async def test_empty_knowledge_base_is_searched_without_an_embedding_request(
    store: SQLMemoryStore, openai_fake: FakeOpenAI
) -> None:
    before = len(openai_fake.embedding_requests)
    assert await store.search_knowledge("what are your opening hours") == []
    assert len(openai_fake.embedding_requests) == before
    await store.add_document(title="Hours", text="Open Monday to Friday from 9 to 5.")
    assert (await store.search_knowledge("opening hours"))[0].title == "Hours"  # the check skips nothing


async def test_knowledge_add_list_search_reindex_delete(store: SQLMemoryStore) -> None:
    body = "# Claims\n\n" + "To file a claim, call us within 30 days of the incident. " * 40
    doc = await store.add_document(
        title="Claims", text=body, content_type="text/markdown", source_name="c.md"
    )
    assert doc.chunks > 1 and doc.title == "Claims"
    again = await store.add_document(title="Claims copy", text=body)
    assert again.id == doc.id  # the same text is stored once
    other = await store.add_document(
        title="Hours", text="Open Monday to Friday from 9 to 5, Saturday 10 to 12."
    )
    listed = await store.list_documents()
    assert [(d.id, d.chunks) for d in listed] == [(other.id, 1), (doc.id, doc.chunks)]
    hits = await store.search_knowledge("how do I file a claim", limit=2)
    assert hits and hits[0].title == "Claims" and "claim" in hits[0].text
    assert (await store.search_knowledge("open on Saturday", limit=1))[0].title == "Hours"
    assert await store.reindex_documents(doc.id) == doc.chunks
    assert await store.delete_document(doc.id) is True
    assert await store.delete_document(doc.id) is False
    assert [h.title for h in await store.search_knowledge("file a claim")] == []
    assert [d.id for d in await store.list_documents()] == [other.id]


async def _counts(store: SQLMemoryStore) -> dict[str, int]:
    counts = {}
    async with transaction(store.sessions) as session:
        for table in (Caller, Call, CallTurn, Memory, Appointment, Message):
            counts[table.__tablename__] = int(
                await session.scalar(select(func.count()).select_from(table)) or 0
            )
    return counts


async def test_delete_caller_removes_profile_memories_and_transcripts(store: SQLMemoryStore) -> None:
    await store.store_memories(MARIA, [MemoryItem(content="Asked about home insurance.")], name="Maria Lopez")
    await store.store_memories(JOHN, [MemoryItem(content="Wants car insurance.")], name="John")
    async with transaction(store.sessions) as session:
        maria = (await session.execute(select(Caller).where(Caller.phone == MARIA))).scalar_one()
        call = Call(call_sid="CA1", caller_id=maria.id, from_number=MARIA, to_number="+15550009999")
        orphan = Call(call_sid="CA2", from_number=MARIA, to_number="+15550009999")  # not linked yet
        session.add_all([call, orphan])
        await session.flush()
        session.add_all(
            [
                CallTurn(call_id=call.id, seq=0, role="caller", text="Hi, I'm Maria Lopez."),
                CallTurn(call_id=orphan.id, seq=0, role="caller", text="Me again."),
                Appointment(caller_id=maria.id, phone=MARIA, starts_at=datetime(2026, 12, 1, tzinfo=UTC)),
                Message(phone=MARIA, body="Call me back"),
            ]
        )
    before = await _counts(store)
    assert await store.delete_caller(MARIA) is True
    after = await _counts(store)
    assert after == {
        "callers": before["callers"] - 1,
        "calls": 0,
        "call_turns": 0,
        "memories": before["memories"] - 1,
        "appointments": 0,
        "messages": 0,
    }
    assert (await store.caller_context(MARIA)).known is False
    assert await store.retrieve(MARIA, "home insurance") == []
    assert all("Maria" not in m.content for m in await store.retrieve(None, "home insurance Maria"))
    assert (await store.caller_context(JOHN)).name == "John"
    assert await store.delete_caller(MARIA) is False


async def test_purge_expired_deletes_old_caller_data(store: SQLMemoryStore) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    await store.store_memories(MARIA, [MemoryItem(content="Old fact.", created_at=old)])
    await store.store_memories(MARIA, [MemoryItem(content="Fresh fact.")])
    async with transaction(store.sessions) as session:
        session.add(Call(call_sid="CAold", from_number=MARIA, started_at=old))
    assert await store.purge_expired(0) == 0
    assert await store.purge_expired(365) == 2
    context = await store.caller_context(MARIA)
    assert [m.content for m in context.memories] == ["Fresh fact."]
    assert (await _counts(store))["calls"] == 0


async def test_two_calls_writing_the_same_new_caller_at_once_make_one_caller(store: SQLMemoryStore) -> None:
    await asyncio.gather(
        *(
            store.store_memories(MARIA, [MemoryItem(content=f"Fact from call {i}.")], name="Maria")
            for i in range(4)
        )
    )
    context = await store.caller_context(MARIA)
    assert sorted(m.content for m in context.memories) == [f"Fact from call {i}." for i in range(4)]
    assert (await _counts(store))["callers"] == 1
