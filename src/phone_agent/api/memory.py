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

import hmac
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from phone_agent.api.deps import RuntimeDep, ServicesDep, is_loopback
from phone_agent.api.limits import MAX_DB_INT, JSONLimitedRoute
from phone_agent.config import MAX_RETENTION_DAYS
from phone_agent.errors import PhoneAgentError
from phone_agent.memory.base import CallerContext, KnowledgeDocumentInfo, KnowledgeHit, MemoryItem
from phone_agent.memory.documents import DocumentError, content_type_for
from phone_agent.memory.jobs import Job, start_reindex, start_upload
from phone_agent.memory.requests import apply_once
from phone_agent.memory.sql import SQLMemoryStore
from phone_agent.runtime import Runtime


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
RequestIdDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=64,
        description="Client-chosen id of a write: a write with an id already applied is not applied again.",
    ),
]


router = APIRouter(
    tags=["memory"], dependencies=[Depends(require_service_token)], route_class=JSONLimitedRoute
)
DocumentId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]


class StoreItem(BaseModel):
    """One fact as the client sends it (``MemoryItem`` without the store's id and score)."""

    content: str = Field(max_length=4000)
    kind: str = Field("fact", max_length=40)
    key: str | None = Field(None, max_length=200)
    call_sid: str | None = Field(None, max_length=100)
    created_at: datetime | None = None


class StoreRequest(BaseModel):
    """Facts to merge into a caller's memory."""

    phone: str = Field(min_length=3, max_length=32)
    items: list[StoreItem] = Field(default_factory=list, max_length=500)
    name: str | None = Field(None, max_length=200)
    profile: dict[str, Any] | None = None


class RetrieveRequest(BaseModel):
    """A memory search (one caller's when ``phone`` is given)."""

    phone: str | None = Field(None, max_length=32)
    query: str = Field(max_length=4000)
    limit: int = Field(5, ge=1, le=50)


class SearchRequest(BaseModel):
    """A knowledge search."""

    query: str = Field(max_length=4000)
    limit: int = Field(4, ge=1, le=50)


class DocumentRequest(BaseModel):
    """A document as text (the CLI reads files; ``/knowledge/files`` takes uploads)."""

    title: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1)
    content_type: str = Field("text/plain", max_length=100)
    source_name: str | None = Field(None, max_length=300)


class PurgeRequest(BaseModel):
    """Retention run: delete caller data older than ``days`` (default: the setting)."""

    days: int | None = Field(None, ge=0, le=MAX_RETENTION_DAYS)


@router.post("/memory/store")
async def store(body: StoreRequest, store: StoreDep, request_id: RequestIdDep = None) -> dict[str, int]:
    """Merge facts (idempotent: replaying the same request changes nothing)."""
    items = [MemoryItem(**item.model_dump()) for item in body.items]

    async def write() -> dict[str, int]:
        await store.store_memories(body.phone, items, name=body.name, profile=body.profile)
        return {"stored": len(items)}

    return await apply_once(store.sessions, request_id, write)


@router.post("/memory/retrieve")
async def retrieve(body: RetrieveRequest, store: StoreDep) -> dict[str, list[MemoryItem]]:
    """Memories relevant to the query."""
    return {"items": await store.retrieve(body.phone, body.query, limit=body.limit)}


@router.get("/memory/callers/{phone}")
async def caller(
    phone: str, store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 8
) -> CallerContext:
    """A caller's profile and top memories (``known: false`` for a new number)."""
    return await store.caller_context(phone, limit=limit)


@router.delete("/memory/callers/{phone}")
async def forget_caller(phone: str, store: StoreDep, request_id: RequestIdDep = None) -> dict[str, bool]:
    """Delete everything about a caller (a replayed delete does not erase what was stored since)."""

    async def write() -> dict[str, bool]:
        return {"deleted": await store.delete_caller(phone)}

    return await apply_once(store.sessions, request_id, write)


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


@router.post("/knowledge/files", status_code=201, response_model=None)
async def upload_document(
    file: UploadFile,
    store: StoreDep,
    services: ServicesDep,
    runtime: RuntimeDep,
    wait: Annotated[bool, Query(description="false: answer 202 with the job at once")] = True,
) -> KnowledgeDocumentInfo | JSONResponse:
    """Add an uploaded file (text, Markdown, HTML or PDF), parsed in a worker process as a job."""
    max_mb = services.settings.max_upload_mb
    data = await file.read(max_mb * 1024 * 1024 + 1)
    if len(data) > max_mb * 1024 * 1024:
        raise HTTPException(413, f"file larger than max_upload_mb ({max_mb} MB)")
    filename = file.filename or "upload.txt"
    try:
        content_type_for(filename, file.content_type)
    except DocumentError as exc:
        raise HTTPException(422, str(exc)) from exc
    job = start_upload(
        runtime.knowledge_jobs,
        store,
        data=data,
        filename=filename,
        content_type=file.content_type,
        spawn=runtime.spawner(services),
    )
    if not wait:
        return _accepted(job)
    return KnowledgeDocumentInfo.model_validate(await _finished(runtime, job))


@router.delete("/knowledge/documents/{document_id}")
async def delete_document(document_id: DocumentId, store: StoreDep) -> dict[str, bool]:
    """Delete a document and its chunks."""
    return {"deleted": await store.delete_document(document_id)}


@router.post("/knowledge/reindex", response_model=None)
async def reindex(
    store: StoreDep,
    services: ServicesDep,
    runtime: RuntimeDep,
    document_id: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
    wait: Annotated[bool, Query(description="false: answer 202 with the job at once")] = True,
) -> dict[str, int] | JSONResponse:
    """Re-chunk and re-embed one document or all, as a job; 409 while another reindex runs."""
    job = start_reindex(runtime.knowledge_jobs, store, document_id, spawn=runtime.spawner(services))
    if not wait:
        return _accepted(job)
    return {"chunks": int((await _finished(runtime, job))["chunks"])}


@router.get("/knowledge/jobs/{job_id}")
async def knowledge_job(job_id: Annotated[str, Path(max_length=64)], runtime: RuntimeDep) -> dict[str, Any]:
    """An upload's or reindex's status and progress."""
    return runtime.knowledge_jobs.get(job_id).public()


def _accepted(job: Job) -> JSONResponse:
    return JSONResponse(
        {"job": job.public()}, status_code=202, headers={"Location": f"/knowledge/jobs/{job.id}"}
    )


async def _finished(runtime: Runtime, job: Job) -> dict[str, Any]:
    """The job's result; its failure as an HTTP error (422 for a document that cannot be read)."""
    try:
        return await runtime.knowledge_jobs.wait(job)
    except PhoneAgentError as exc:
        raise HTTPException(exc.status_code, str(exc)) from exc
