"""Knowledge & memory on the admin page: documents, knowledge search, callers and their memories.

Documents and caller deletion go through the memory API (``services.memory``, ``forget_caller``)
so chunks, embeddings and search indexes stay right whichever backend runs. Listing callers and
editing or deleting a single memory read this process's database directly (the memory API has no
such calls); with ``memory_backend=http`` those two are shown only when the memory rows live here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import delete, select

from phone_agent.admin import auth
from phone_agent.admin.auth import AdminDep
from phone_agent.admin.callers import caller_view, search_callers
from phone_agent.admin.owner import header_counts
from phone_agent.admin.pages import admin_context
from phone_agent.admin.templating import render
from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.api.limits import MAX_DB_INT
from phone_agent.errors import NotFoundError, PhoneAgentError
from phone_agent.memory import MemoryItem
from phone_agent.memory.documents import content_type_for
from phone_agent.memory.jobs import start_reindex, start_upload
from phone_agent.services import Services
from phone_agent.storage.db import transaction
from phone_agent.storage.outbound import on_do_not_call
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import AuditEntry, Caller, Memory

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])


def masked_phone(phone: str) -> str:
    """How the audit log names a caller: enough to tell callers apart, not enough to call them."""
    return "…" + phone[-4:] if len(phone) > 4 else "…"


def memories_editable(services: Services) -> bool:
    """Single memories can be edited here when the memory rows are in this process's database."""
    return services.settings.memory_backend == "local"


async def _audit(services: Services, actor: str, action: str, target: str, new: str | None = None) -> None:
    async with transaction(services.sessions) as session:
        session.add(AuditEntry(actor=actor, action=action, target=target[:200], new_value=new))


@router.post("/admin/knowledge/documents")
async def upload_document(
    request: Request,
    runtime: RuntimeDep,
    services: ServicesDep,
    admin: AdminDep,
    file: UploadFile,
    wait: Annotated[bool, Query(description="false (JSON): answer 202 with the job at once")] = True,
) -> Response:
    """Add an uploaded file (text, Markdown, HTML, PDF) to the knowledge base; 413 above max_upload_mb.

    It is parsed in a worker process as a job (``/admin/api/knowledge/jobs/{id}``); the page waits.
    """
    limit = services.settings.max_upload_mb
    auth.refuse_oversize(request, limit)
    data = await file.read(limit * 1024 * 1024 + 1)
    if len(data) > limit * 1024 * 1024:
        raise auth.upload_too_large(limit)
    filename = file.filename or "upload.txt"
    try:
        content_type_for(filename, file.content_type)
        job = start_upload(
            runtime.knowledge_jobs,
            services.memory,
            data=data,
            filename=filename,
            content_type=file.content_type,
            spawn=runtime.spawner(services),
        )
        if not wait and auth.wants_json(request):
            await _audit(services, admin.actor, "knowledge.add", filename, new=f"job {job.id}")
            return JSONResponse({"job": job.public()}, status_code=202)
        info = await runtime.knowledge_jobs.wait(job)
    except PhoneAgentError as exc:
        if auth.wants_json(request) or exc.status_code >= 500:
            raise
        context = await admin_context(runtime, services, admin, request, upload_error=str(exc))
        return render(request, "admin.html", context, status_code=exc.status_code)
    await _audit(services, admin.actor, "knowledge.add", info["title"], new=f"{info['chunks']} chunks")
    if auth.wants_json(request):
        return JSONResponse(info, status_code=201)
    return RedirectResponse("/admin?saved=knowledge#knowledge", status_code=303)


@router.get("/admin/api/knowledge/jobs/{job_id}")
async def knowledge_job(job_id: Annotated[str, Path(max_length=64)], runtime: RuntimeDep) -> dict[str, Any]:
    """An upload's or reindex's status and progress."""
    return runtime.knowledge_jobs.get(job_id).public()


@router.post("/admin/api/knowledge/reindex", status_code=202)
async def reindex_knowledge(
    runtime: RuntimeDep,
    services: ServicesDep,
    admin: AdminDep,
    document_id: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> dict[str, Any]:
    """Re-chunk and re-embed the knowledge base (or one document) as a job; 409 while one runs."""
    job = start_reindex(runtime.knowledge_jobs, services.memory, document_id, spawn=runtime.spawner(services))
    await _audit(services, admin.actor, "knowledge.reindex", job.name, new=f"job {job.id}")
    return {"job": job.public()}


@router.post("/admin/knowledge/documents/{document_id}/delete")
async def remove_document(
    document_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
    request: Request,
    services: ServicesDep,
    admin: AdminDep,
) -> Response:
    """Delete a document and its chunks."""
    store = services.memory
    if not await store.delete_document(document_id):
        raise NotFoundError(f"No knowledge document {document_id}.")
    await _audit(services, admin.actor, "knowledge.delete", f"document {document_id}")
    if auth.wants_json(request):
        return JSONResponse({"ok": True})
    return RedirectResponse("/admin?saved=knowledge#knowledge", status_code=303)


@router.get("/admin/api/knowledge/documents")
async def documents(services: ServicesDep) -> dict[str, Any]:
    """Every knowledge document, newest first."""
    store = services.memory
    return {"documents": [d.model_dump(mode="json") for d in await store.list_documents()]}


@router.get("/admin/api/knowledge/search")
async def knowledge_search(services: ServicesDep, q: str) -> dict[str, Any]:
    """What the agent would find in the knowledge base for a question."""
    store = services.memory
    return {"hits": [h.model_dump() for h in await store.search_knowledge(q, limit=5)]}


@router.get("/admin/api/callers")
async def callers(services: ServicesDep, q: str = "") -> dict[str, Any]:
    """Callers matching a number or name."""
    return {"callers": await search_callers(services, q)}


@router.get("/admin/api/callers/{phone}")
async def caller(phone: str, services: ServicesDep) -> dict[str, Any]:
    """A caller's profile, memories and calls."""
    view = await caller_view(services, phone)
    if not view["known"]:
        raise NotFoundError(f"No caller {phone}.")
    return view


@router.get("/admin/callers/{phone}")
async def caller_page(phone: str, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    """One caller: profile, memories (view, edit, delete), calls, and "delete all data"."""
    view = await caller_view(services, phone)
    if not view["known"]:
        raise NotFoundError(f"No caller {phone}.")
    context = {
        "csrf_token": admin.csrf_token,
        "tz": services.settings.timezone,
        "caller": view,
        "editable": memories_editable(services),
        "saved": request.query_params.get("saved"),
        **await header_counts(services),
        "do_not_call": await on_do_not_call(services.sessions, view["phone"]),
    }
    return render(request, "caller.html", context)


async def _own_memory(services: Services, phone: str, memory_id: int) -> Memory:
    if not memories_editable(services):
        raise NotFoundError("Memories are kept by the memory service (memory_backend=http); edit them there.")
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(Memory)
                .join(Caller, Caller.id == Memory.caller_id)
                .where(Memory.id == memory_id, Caller.phone == normalise_phone(phone))
            )
        ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"Caller {phone} has no memory {memory_id}.")
    return row


@router.post("/admin/callers/{phone}/memories/{memory_id}")
async def edit_memory(
    phone: str, memory_id: int, services: ServicesDep, admin: AdminDep, content: str = Form(...)
) -> Response:
    """Reword a memory: stored again through the memory API so its search index and embedding follow."""
    memory = await _own_memory(services, phone, memory_id)
    if not content.strip():
        return await delete_memory(phone, memory_id, services, admin)
    async with transaction(services.sessions) as session:
        await session.execute(delete(Memory).where(Memory.id == memory.id))
    store = services.memory
    await store.store_memories(
        phone, [MemoryItem(content=content.strip(), kind=memory.kind, key=memory.key, score=0.0)]
    )
    await _audit(services, admin.actor, "memory.edit", f"caller {masked_phone(phone)} memory {memory_id}")
    return RedirectResponse(f"/admin/callers/{normalise_phone(phone)}?saved=memory", status_code=303)


@router.post("/admin/callers/{phone}/memories/{memory_id}/delete")
async def delete_memory(phone: str, memory_id: int, services: ServicesDep, admin: AdminDep) -> Response:
    """Forget one memory of a caller."""
    memory = await _own_memory(services, phone, memory_id)
    async with transaction(services.sessions) as session:
        await session.execute(delete(Memory).where(Memory.id == memory.id))
    await _audit(services, admin.actor, "memory.delete", f"caller {masked_phone(phone)} memory {memory_id}")
    return RedirectResponse(f"/admin/callers/{normalise_phone(phone)}?saved=memory", status_code=303)


@router.post("/admin/callers/{phone}/delete")
async def forget_caller(phone: str, request: Request, services: ServicesDep, admin: AdminDep) -> Response:
    """Delete everything about a caller: profile, memories, calls and transcripts."""
    deleted = await services.forget_caller(phone)
    if not deleted:
        raise NotFoundError(f"No data about {phone}.")
    await _audit(services, admin.actor, "caller.delete", f"caller {masked_phone(phone)}")
    if auth.wants_json(request):
        return JSONResponse({"ok": True})
    return RedirectResponse("/admin?saved=caller-deleted#knowledge", status_code=303)
