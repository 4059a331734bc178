"""The memory service API (``--role memory``, port 8100; also served by ``--role all``).

Every route needs ``Authorization: Bearer <memory_service_token>``; with no token configured only
clients on this machine (loopback) are let in. Routes:
``POST /memory/store``, ``POST /memory/retrieve``, ``GET|DELETE /memory/callers/{phone}``,
``POST /memory/purge``, ``POST /knowledge/search``, ``GET|POST /knowledge/documents``,
``POST /knowledge/files`` (multipart upload), ``DELETE /knowledge/documents/{id}``,
``POST /knowledge/reindex``. ``/health`` is the common health route. The store served is the one on
this process's own database (``Services.local_memory``). Retention runs in every role
(``Runtime.start``).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field

from phone_agent.api.deps import ServicesDep, is_loopback
from phone_agent.memory.base import CallerContext, KnowledgeDocumentInfo, KnowledgeHit, MemoryItem
from phone_agent.memory.documents import DocumentError, document_text
from phone_agent.memory.sql import SQLMemoryStore


def require_service_token(request: Request, services: ServicesDep) -> None:
    """401 unless the bearer token matches ``memory_service_token`` (loopback only when unset)."""
    expected = services.settings.secret("memory_service_token")
    if not expected:
        if not is_loopback(request):
            raise HTTPException(403, "memory service: set memory_service_token to allow remote clients")
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401, "memory service: missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
        )


def get_store(services: ServicesDep) -> SQLMemoryStore:
    """The local store this service serves."""
    return services.local_memory


StoreDep = Annotated[SQLMemoryStore, Depends(get_store)]

router = APIRouter(tags=["memory"], dependencies=[Depends(require_service_token)])


class StoreRequest(BaseModel):
    """Facts to merge into a caller's memory."""

    phone: str = Field(min_length=3, max_length=32)
    items: list[MemoryItem] = Field(default_factory=list)
    name: str | None = None
    profile: dict[str, Any] | None = None


class RetrieveRequest(BaseModel):
    """A memory search (one caller's when ``phone`` is given)."""

    phone: str | None = None
    query: str
    limit: int = Field(5, ge=1, le=50)


class SearchRequest(BaseModel):
    """A knowledge search."""

    query: str
    limit: int = Field(4, ge=1, le=50)


class DocumentRequest(BaseModel):
    """A document as text (the CLI reads files; ``/knowledge/files`` takes uploads)."""

    title: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1)
    content_type: str = "text/plain"
    source_name: str | None = None


class PurgeRequest(BaseModel):
    """Retention run: delete caller data older than ``days`` (default: the setting)."""

    days: int | None = Field(None, ge=0)


@router.post("/memory/store")
async def store(body: StoreRequest, store: StoreDep) -> dict[str, int]:
    """Merge facts (idempotent: replaying the same request changes nothing)."""
    await store.store_memories(body.phone, body.items, name=body.name, profile=body.profile)
    return {"stored": len(body.items)}


@router.post("/memory/retrieve")
async def retrieve(body: RetrieveRequest, store: StoreDep) -> dict[str, list[MemoryItem]]:
    """Memories relevant to the query."""
    return {"items": await store.retrieve(body.phone, body.query, limit=body.limit)}


@router.get("/memory/callers/{phone}")
async def caller(phone: str, store: StoreDep, limit: int = 8) -> CallerContext:
    """A caller's profile and top memories (``known: false`` for a new number)."""
    return await store.caller_context(phone, limit=max(1, min(limit, 500)))


@router.delete("/memory/callers/{phone}")
async def forget_caller(phone: str, store: StoreDep) -> dict[str, bool]:
    """Delete everything about a caller."""
    return {"deleted": await store.delete_caller(phone)}


@router.post("/memory/purge")
async def purge(body: PurgeRequest, store: StoreDep, services: ServicesDep) -> dict[str, int]:
    """Apply retention now."""
    days = services.settings.memory_retention_days if body.days is None else body.days
    return {"deleted": await store.purge_expired(days)}


@router.post("/knowledge/search")
async def search(body: SearchRequest, store: StoreDep) -> dict[str, list[KnowledgeHit]]:
    """Knowledge chunks relevant to the query."""
    return {"hits": await store.search_knowledge(body.query, limit=body.limit)}


@router.get("/knowledge/documents")
async def documents(store: StoreDep) -> dict[str, list[KnowledgeDocumentInfo]]:
    """Every knowledge document."""
    return {"documents": await store.list_documents()}


@router.post("/knowledge/documents", status_code=201)
async def add_document(body: DocumentRequest, store: StoreDep) -> KnowledgeDocumentInfo:
    """Add a document given as text."""
    return await store.add_document(
        title=body.title, text=body.text, content_type=body.content_type, source_name=body.source_name
    )


@router.post("/knowledge/files", status_code=201)
async def upload_document(file: UploadFile, store: StoreDep, services: ServicesDep) -> KnowledgeDocumentInfo:
    """Add an uploaded file (text, Markdown, HTML or PDF)."""
    max_mb = services.settings.max_upload_mb
    data = await file.read(max_mb * 1024 * 1024 + 1)
    if len(data) > max_mb * 1024 * 1024:
        raise HTTPException(413, f"file larger than max_upload_mb ({max_mb} MB)")
    try:
        title, text, kind = await asyncio.to_thread(
            document_text, data, file.filename or "upload.txt", file.content_type
        )
    except DocumentError as exc:
        raise HTTPException(422, str(exc)) from exc
    return await store.add_document(title=title, text=text, content_type=kind, source_name=file.filename)


@router.delete("/knowledge/documents/{document_id}")
async def delete_document(document_id: int, store: StoreDep) -> dict[str, bool]:
    """Delete a document and its chunks."""
    return {"deleted": await store.delete_document(document_id)}


@router.post("/knowledge/reindex")
async def reindex(store: StoreDep, document_id: int | None = None) -> dict[str, int]:
    """Re-chunk and re-embed one document or all."""
    return {"chunks": await store.reindex_documents(document_id)}
