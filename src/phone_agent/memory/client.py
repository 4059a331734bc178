"""``HTTPMemoryStore``: the MemoryStore protocol over HTTP to the memory service (``--role memory``).

Reads (caller context, retrieval, knowledge search) go straight to the service with a timeout and
a retry on connection errors, and raise ``StoreError`` when it cannot answer (the call hooks turn
that into an empty context). Caller-memory writes (``store_memories``, ``delete_caller``) go through
a durable ``Outbox`` first and are delivered by a background task — deletes first, then the rest
oldest first — each with its ``Idempotency-Key``, which the service applies once: while the service
is down they wait on disk; when it is back they are replayed, and a replay changes nothing twice.
Learning jobs queued when a call's learning could not read the caller's context (``queue_learning``)
are run by the same task through the ``learner`` the owner gives ``start``.

The task starts with the store's first use and with ``start()`` (at process start), so what an
earlier process left queued is replayed without waiting for a new write; while entries wait it
retries with backoff, and when idle it looks at the file every ``REPLAY_INTERVAL`` seconds (other
processes — the CLI — append to it too). Facts are stamped with their time when queued, so a
replay keeps the original dates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from loguru import logger

from phone_agent.config import mask_url
from phone_agent.errors import PhoneAgentError, StoreError
from phone_agent.memory.base import CallerContext, KnowledgeDocumentInfo, KnowledgeHit, MemoryItem
from phone_agent.memory.outbox import LEARN, Outbox, OutboxEntry
from phone_agent.storage.phones import normalise_phone
from phone_agent.storage.tables import utcnow

RETRY_STATUSES = {401, 403, 408, 409, 425, 429}  # config or transient: keep the write, retry later
MAX_BACKOFF = 2.0
REPLAY_INTERVAL = 5.0  # seconds between looks at an idle outbox (other processes append to it)
LEARN_LEASE = 300.0  # a learning job is claimed this long (one process runs it)
KNOWLEDGE_TIMEOUT = 300.0  # chunking + embedding a long document takes a while
IDEMPOTENCY_HEADER = "Idempotency-Key"
Learner = Callable[[str], Awaitable[object]]  # learns from a call SID; raises when it must be retried


class HTTPMemoryStore:
    """Memory store client with timeouts, retries and a durable outbox for writes."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None,
        outbox_path: Path,
        timeout: float = 2.0,
        retries: int = 1,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.outbox = Outbox(outbox_path)
        self.online = True
        self._client = self.create_client(headers)
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Condition | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._results: dict[int, Any] = {}
        self.learner: Learner | None = None

    def create_client(self, headers: dict[str, str]) -> httpx.AsyncClient:
        """The HTTP client (overridable)."""
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout)

    # -- reads -------------------------------------------------------------------------------------
    async def _call(
        self, method: str, path: str, *, request_timeout: float | None = None, **kwargs: Any
    ) -> Any:
        self._start()  # the first use of the store also replays what earlier processes left queued
        last: Exception | None = None
        for _attempt in range(self.retries + 1):
            try:
                response = await self._client.request(
                    method, path, timeout=request_timeout or self.timeout, **kwargs
                )
            except httpx.TransportError as exc:
                last = exc
                continue
            if response.status_code >= 400:
                raise StoreError(
                    f"memory service: {method} {path} answered {response.status_code}: "
                    f"{_error_message(response)}"
                )
            return response.json()
        raise StoreError(
            f"memory service at {mask_url(self.base_url)} unreachable ({type(last).__name__}); "
            "check memory_url and that `phone-agent serve --role memory` is running."
        )

    async def caller_context(self, phone: str, *, limit: int = 8) -> CallerContext:
        data = await self._call("GET", f"/memory/callers/{quote(phone, safe='')}", params={"limit": limit})
        return CallerContext.model_validate(data)

    async def retrieve(self, phone: str | None, query: str, *, limit: int = 5) -> list[MemoryItem]:
        data = await self._call(
            "POST", "/memory/retrieve", json={"phone": phone, "query": query, "limit": limit}
        )
        return [MemoryItem.model_validate(item) for item in data["items"]]

    async def search_knowledge(self, query: str, *, limit: int = 4) -> list[KnowledgeHit]:
        data = await self._call("POST", "/knowledge/search", json={"query": query, "limit": limit})
        return [KnowledgeHit.model_validate(hit) for hit in data["hits"]]

    async def add_document(
        self,
        *,
        title: str,
        text: str,
        content_type: str = "text/plain",
        source_name: str | None = None,
        chunks: list[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> KnowledgeDocumentInfo:
        """The service chunks the text itself (``chunks`` is not sent); progress is all at the end."""
        body = {"title": title, "text": text, "content_type": content_type, "source_name": source_name}
        data = await self._call("POST", "/knowledge/documents", json=body, request_timeout=KNOWLEDGE_TIMEOUT)
        info = KnowledgeDocumentInfo.model_validate(data)
        if progress is not None:
            progress(info.chunks, info.chunks)
        return info

    async def list_documents(self) -> list[KnowledgeDocumentInfo]:
        data = await self._call("GET", "/knowledge/documents")
        return [KnowledgeDocumentInfo.model_validate(d) for d in data["documents"]]

    async def delete_document(self, document_id: int) -> bool:
        return bool((await self._call("DELETE", f"/knowledge/documents/{document_id}"))["deleted"])

    async def reindex_documents(
        self, document_id: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Runs on the service (409 there while another reindex runs); progress is all at the end."""
        params = {} if document_id is None else {"document_id": document_id}
        data = await self._call(
            "POST", "/knowledge/reindex", params=params, request_timeout=KNOWLEDGE_TIMEOUT
        )
        if progress is not None:
            progress(1, 1)
        return int(data["chunks"])

    async def purge_expired(self, days: int) -> int:
        return int((await self._call("POST", "/memory/purge", json={"days": days}))["deleted"])

    # -- writes through the outbox -----------------------------------------------------------------
    async def store_memories(
        self,
        phone: str,
        items: list[MemoryItem],
        *,
        name: str | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        now = utcnow()
        stamped = [item.model_copy(update={"created_at": item.created_at or now}) for item in items]
        body = {
            "phone": phone,
            "items": [item.model_dump(mode="json", exclude={"id", "score"}) for item in stamped],
            "name": name,
            "profile": profile,
        }
        await self._write("POST", "/memory/store", body, phone=phone)

    async def delete_caller(self, phone: str) -> bool:
        """Delete on the service; when it is down the delete is queued and True is returned."""
        path = f"/memory/callers/{quote(phone, safe='')}"
        result = await self._write("DELETE", path, None, phone=phone)
        return True if result is None else bool(result.get("deleted"))

    async def queue_learning(self, call_sid: str, phone: str) -> None:
        """Queue learning from a call for when the service is back (run by the ``learner``)."""
        await self.outbox.append(LEARN, call_sid, None, phone=normalise_phone(phone))
        self._start()
        assert self._wake is not None
        self._wake.set()

    async def _write(self, method: str, path: str, body: Any, *, phone: str) -> Any:
        """Queue durably, nudge the sender, and wait briefly for the answer while the service is up."""
        entry_id = await self.outbox.append(method, path, body, phone=normalise_phone(phone))
        self._start()
        assert self._wake is not None and self._changed is not None
        self._wake.set()
        if not self.online or asyncio.current_task() is self._flusher:  # a learning job's own write
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout * (self.retries + 1)):
                async with self._changed:
                    await self._changed.wait_for(lambda: entry_id in self._results or not self.online)
        return self._results.pop(entry_id, None)

    async def flush(self, within: float = 30.0) -> int:
        """Wait until every queued entry is delivered (or ``within`` seconds); returns how many remain.

        Learning jobs count only when this store has a ``learner`` to run them.
        """
        self._start()
        assert self._wake is not None and self._changed is not None
        self._wake.set()
        jobs = self.learner is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while await self.outbox.pending(jobs=jobs):
                    async with self._changed:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), 0.5)
        return await self.outbox.pending(jobs=jobs)

    def start(self, *, learner: Learner | None = None) -> None:
        """Replay what is queued now and whenever it is not empty (``learner`` runs learning jobs)."""
        if learner is not None:
            self.learner = learner
        self._start()

    def _start(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._changed = asyncio.Condition()
            self._flusher = asyncio.create_task(self._deliver_forever(), name="memory-outbox")

    async def _deliver_forever(self) -> None:
        assert self._wake is not None and self._changed is not None
        backoff = 0.1
        while True:
            entries = await self.outbox.head(jobs=self.learner is not None)
            if not entries:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # look again: another process may append
                    await asyncio.wait_for(self._wake.wait(), REPLAY_INTERVAL)
                continue
            for entry in entries:
                if entry.method == LEARN and not (
                    self.learner and await self.outbox.claim(entry.id, LEARN_LEASE)
                ):
                    continue  # another process claimed it just now: it stays queued until that one is done
                delivered, result = await self._replay(entry)
                if not delivered:
                    async with self._changed:
                        self.online = False
                        self._changed.notify_all()  # writers stop waiting: their write is safe on disk
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    break
                self.online, backoff = True, 0.1
                await self.outbox.remove(entry.id)
                async with self._changed:
                    self._results[entry.id] = result
                    if len(self._results) > 1000:  # nobody waited for these answers
                        self._results.pop(next(iter(self._results)))
                    self._changed.notify_all()

    async def _replay(self, entry: OutboxEntry) -> tuple[bool, Any]:
        return await (self._learn(entry) if entry.method == LEARN else self._deliver(entry))

    async def _learn(self, entry: OutboxEntry) -> tuple[bool, Any]:
        """Run a claimed learning job: (True, None) when done or hopeless; False to retry it later."""
        assert self.learner is not None
        try:
            await self.learner(entry.path)
        except (PhoneAgentError, httpx.HTTPError, OSError) as exc:  # service or LLM still away
            logger.info("memory: learning from call {} waits ({})", entry.path, type(exc).__name__)
            await self.outbox.release(entry.id)
            return False, None
        except Exception:  # a job that can never succeed must not block the queue behind it
            logger.exception("memory: learning job for call {} failed; dropped", entry.path)
        return True, None

    async def _deliver(self, entry: OutboxEntry) -> tuple[bool, Any]:
        """(True, answer) when the service took the write or refused it for good; False to retry."""
        headers = {IDEMPOTENCY_HEADER: entry.request_id} if entry.request_id else None
        try:
            response = await self._client.request(entry.method, entry.path, json=entry.body, headers=headers)
        except httpx.TransportError:
            return False, None
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            if response.status_code in (401, 403):
                logger.error("memory service refused the token; writes wait in the outbox until it is fixed")
            return False, None
        if response.status_code >= 400:  # a request the service will never accept: drop, don't block
            logger.error("memory service rejected a queued write ({}); dropped", response.status_code)
            return True, None
        return True, response.json()

    async def aclose(self) -> None:
        """Stop the sender (queued writes stay on disk) and close the client."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._client.aclose()
        self.outbox.close()


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("message") or response.text[:200])
    except ValueError:
        return response.text[:200]
