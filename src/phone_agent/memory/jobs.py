"""Knowledge-base work as background jobs with progress: uploads and reindexes.

``KnowledgeJobs`` (one per process, on the runtime) numbers each job, keeps its status and progress
for the status endpoints (``GET /knowledge/jobs/{id}`` on the memory API, ``/admin/api/knowledge/
jobs/{id}`` on the admin page) and runs its work through the caller's ``spawn`` (an owned background
task). Document parsing is one job at a time (each in its own worker process, see ``ingest``), and
there is at most one reindex: a second while one is queued or running is refused with 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from loguru import logger

from phone_agent.errors import PhoneAgentError
from phone_agent.memory.base import MemoryStore
from phone_agent.memory.ingest import parse_document

KEEP_JOBS = 100  # finished jobs remembered for their status endpoint
Kind = Literal["upload", "reindex"]
Status = Literal["queued", "running", "done", "failed"]
Progress = Callable[[int, int], None]  # (done, total) in the unit of the current stage
Work = Callable[["Job"], Awaitable[dict[str, Any]]]
Spawn = Callable[[Coroutine[Any, Any, None], str], object]


class ReindexRunning(PhoneAgentError):
    """A reindex is already queued or running."""

    status_code = 409


class UnknownJob(PhoneAgentError):
    """No job with that id (or it finished long ago)."""

    status_code = 404


@dataclass
class Job:
    """One upload or reindex and how far it got."""

    id: str
    kind: Kind
    name: str
    status: Status = "queued"
    stage: str = "queued"
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    error_status: int | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def progress(self, stage: str) -> Progress:
        """A progress callback for one stage (parsing, embedding, ...)."""

        def report(done: int, total: int) -> None:
            self.stage, self.done, self.total = stage, done, total

        return report

    def public(self) -> dict[str, Any]:
        """The job as the status endpoints show it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


class KnowledgeJobs:
    """The process's knowledge jobs."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._parsing = asyncio.Lock()

    def submit(self, kind: Kind, name: str, work: Work, *, spawn: Spawn) -> Job:
        """Queue ``work`` as a job run by ``spawn``; ReindexRunning for a second reindex."""
        if kind == "reindex" and any(
            j.kind == "reindex" and not j.finished.is_set() for j in self._jobs.values()
        ):
            raise ReindexRunning("A reindex is already running; wait for it (see its job) and try again.")
        job = Job(id=uuid.uuid4().hex[:16], kind=kind, name=name)
        self._jobs[job.id] = job
        self._forget_old()
        if spawn(self._run(job, work), f"knowledge-{kind}-{job.id}") is None:  # shutting down
            job.status, job.error, job.error_status = "failed", "the server is shutting down", 503
            job.finished.set()
        return job

    def get(self, job_id: str) -> Job:
        """A job by id; UnknownJob when there is none."""
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"No knowledge job {job_id!r}.")
        return job

    async def wait(self, job: Job) -> dict[str, Any]:
        """Wait for ``job``; its result, or its error raised again as a PhoneAgentError."""
        await job.finished.wait()
        if job.status == "failed":
            error = PhoneAgentError(job.error or "the job failed")
            error.status_code = job.error_status or 500
            raise error
        return job.result or {}

    async def _run(self, job: Job, work: Work) -> None:
        try:
            async with self._parsing if job.kind == "upload" else contextlib.nullcontext():
                job.status, job.stage = "running", "starting"
                job.result = await work(job)
            job.status, job.stage = "done", "done"
        except PhoneAgentError as exc:
            job.status, job.error, job.error_status = "failed", str(exc), exc.status_code
        except Exception as exc:  # reported on the job; the process goes on
            logger.opt(exception=exc).error("knowledge job {} failed", job.id)
            job.status, job.error, job.error_status = "failed", f"{type(exc).__name__}: {exc}", 500
        finally:
            if job.status not in ("done", "failed"):  # cancelled at shutdown
                job.status, job.error, job.error_status = "failed", "cancelled", 503
            job.finished_at = time.time()
            job.finished.set()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished.is_set()]
        for job in finished[: max(0, len(finished) - KEEP_JOBS)]:
            del self._jobs[job.id]


def start_upload(
    jobs: KnowledgeJobs,
    store: MemoryStore,
    *,
    data: bytes,
    filename: str,
    content_type: str | None,
    spawn: Spawn,
) -> Job:
    """Parse (worker process), chunk, embed and index an uploaded file as a job."""

    async def work(job: Job) -> dict[str, Any]:
        job.progress("parsing")(0, 1)
        parsed = await parse_document(data, filename, content_type)
        info = await store.add_document(
            title=parsed.title,
            text=parsed.text,
            content_type=parsed.content_type,
            source_name=filename,
            chunks=parsed.chunks,
            progress=job.progress("indexing chunks"),
        )
        return info.model_dump(mode="json")

    return jobs.submit("upload", filename, work, spawn=spawn)


def start_reindex(jobs: KnowledgeJobs, store: MemoryStore, document_id: int | None, *, spawn: Spawn) -> Job:
    """Re-chunk and re-embed one document (or all) as a job; ReindexRunning while another runs."""

    async def work(job: Job) -> dict[str, Any]:
        progress = job.progress("documents")
        progress(0, 0)
        return {"chunks": await store.reindex_documents(document_id, progress=progress)}

    name = "all documents" if document_id is None else f"document {document_id}"
    return jobs.submit("reindex", name, work, spawn=spawn)
