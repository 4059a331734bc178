"""The contract every memory backend keeps (SQLite, PostgreSQL, HTTP client).

The brain and the call pipeline only use this protocol, so a backend can be swapped without them
knowing. Every method is async and safe to call on the live-call path. Backends:
``memory.sqlite.SQLiteMemoryStore``, ``memory.postgres.PostgresMemoryStore`` (both in-process) and
``memory.client.HTTPMemoryStore`` (the :8100 service); ``memory.build_memory_store`` picks one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class MemoryItem(BaseModel):
    """A dated fact about a caller."""

    id: int | None = None
    content: str
    kind: str = "fact"
    key: str | None = Field(default=None, description="Facts sharing a key merge; the newer one wins.")
    call_sid: str | None = None
    created_at: datetime | None = None
    score: float = Field(default=0.0, description="Retrieval rank score (fused); 0 outside retrieval.")


class CallerContext(BaseModel):
    """What the agent knows about a caller at the start of a call."""

    phone: str
    name: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    memories: list[MemoryItem] = Field(default_factory=list)
    known: bool = False

    def summary(self) -> str:
        """A short plain-text summary for the prompt."""
        parts = []
        if self.name:
            parts.append(f"Name: {self.name}.")
        for key, value in self.profile.items():
            if value and key != "name":
                parts.append(f"{key.replace('_', ' ').capitalize()}: {value}.")
        parts.extend(f"- {item.content}" for item in self.memories)
        return "\n".join(parts)


class KnowledgeHit(BaseModel):
    """A knowledge-base chunk retrieved for a turn."""

    document_id: int
    title: str
    text: str
    score: float = 0.0


class KnowledgeDocumentInfo(BaseModel):
    """A knowledge-base document as listed (content left out)."""

    id: int
    title: str
    source_name: str | None = None
    content_type: str = "text/plain"
    chunks: int = 0
    created_at: datetime | None = None


@runtime_checkable
class MemoryStore(Protocol):
    """Caller memory + knowledge base."""

    async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
        """Profile and top memories of a caller (an empty context for a new caller)."""
        ...

    async def store_memories(
        self,
        phone: str,
        items: list[MemoryItem],
        *,
        name: str | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        """Merge facts into a caller's memory (no duplicates; newer wins on the same key)."""
        ...

    async def retrieve(self, phone: str | None, query: str, *, limit: int = 5) -> list[MemoryItem]:
        """Memories relevant to ``query`` (hybrid lexical + vector when embeddings are on)."""
        ...

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        """Knowledge chunks relevant to ``query``."""
        ...

    async def delete_caller(self, phone: str) -> bool:
        """Delete everything about a caller: profile, memories, calls and transcripts."""
        ...

    async def add_document(
        self, *, title: str, text: str, content_type: str = "text/plain", source_name: str | None = None
    ) -> KnowledgeDocumentInfo:
        """Chunk, embed and index a document (the same text twice is stored once)."""
        ...

    async def list_documents(self) -> list[KnowledgeDocumentInfo]:
        """Every knowledge document, newest first."""
        ...

    async def delete_document(self, document_id: int) -> bool:
        """Delete a document and its chunks; False if it did not exist."""
        ...

    async def reindex_documents(self, document_id: int | None = None) -> int:
        """Re-chunk and re-embed one document (or all); returns the number of chunks written."""
        ...

    async def purge_expired(self, days: int) -> int:
        """Delete caller data older than ``days`` (0 = keep everything); returns rows deleted."""
        ...

    async def aclose(self) -> None:
        """Release clients and background tasks."""
        ...
