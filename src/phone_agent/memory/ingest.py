"""Parse and chunk documents in a worker process with page, time and memory limits.

Reading a PDF is pure Python (pypdf) and can take minutes and hundreds of MB for a hostile or huge
file; on the event loop that stalls every live call. ``parse_document`` and ``chunk_document`` run
the work in a separate process (``multiprocessing`` spawn context, one at a time per process) whose
address space and CPU time are capped with ``resource.setrlimit``; the parent also stops waiting
after ``seconds`` and kills the worker. Whatever goes wrong becomes a ``DocumentError`` (4xx) with a
message: too many pages, too slow, too much memory, encrypted, unreadable. Small plain texts are
handled in-line (a process start costs more than they do).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any

from phone_agent.memory.documents import DocumentError, chunk_text, content_type_for, document_text

INLINE_BYTES = 64 * 1024  # smaller non-PDF documents are parsed and chunked in-line


@dataclass(frozen=True)
class ParseLimits:
    """What one document may cost the worker."""

    max_pages: int = 5000
    seconds: float = 300.0
    memory_mb: int = 1024
    max_text_chars: int = 20_000_000


@dataclass(frozen=True)
class ParsedDocument:
    """A document read into text and cut into chunks."""

    title: str
    text: str
    content_type: str
    chunks: list[str]


def _limit_worker(memory_mb: int, cpu_seconds: int) -> None:
    """Runs first in the worker: cap its address space and CPU time."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))


def _parse(data: bytes, filename: str, content_type: str | None, limits: ParseLimits) -> Any:
    """In the worker: (title, text, kind, chunks), or ("error", message) for a DocumentError."""
    try:
        title, text, kind = document_text(data, filename, content_type, max_pages=limits.max_pages)
        if len(text) > limits.max_text_chars:
            raise DocumentError(
                f"{filename}: more than {limits.max_text_chars:,} characters of text; split the document."
            )
        return title, text, kind, chunk_text(text)
    except DocumentError as exc:
        return ("error", str(exc))
    except MemoryError:
        return ("error", f"{filename}: reading it needs more than {limits.memory_mb} MB; split the document.")


def _chunk(text: str) -> list[str]:
    return chunk_text(text)


async def _in_worker(func: Any, args: tuple[Any, ...], limits: ParseLimits, what: str) -> Any:
    context = multiprocessing.get_context("spawn")
    initargs = (limits.memory_mb, int(limits.seconds) + 1)
    # starting, waiting for and stopping the worker all block: none of it runs on the event loop
    pool: Pool = await asyncio.to_thread(context.Pool, 1, _limit_worker, initargs)
    try:
        pending = pool.apply_async(func, args)
        try:
            return await asyncio.to_thread(pending.get, limits.seconds)
        except multiprocessing.TimeoutError:
            raise DocumentError(
                f"{what}: reading it took longer than {limits.seconds:g} s; split the document."
            ) from None
        except MemoryError:
            raise DocumentError(f"{what}: reading it needs more than {limits.memory_mb} MB.") from None
    finally:
        await asyncio.to_thread(_stop, pool)


def _stop(pool: Pool) -> None:
    pool.terminate()  # kills a worker still busy (timeout), frees its memory either way
    pool.join()


async def parse_document(
    data: bytes, filename: str, content_type: str | None = None, limits: ParseLimits | None = None
) -> ParsedDocument:
    """Read an uploaded document into text and chunks, off the event loop; DocumentError on failure."""
    limits = limits or ParseLimits()
    kind = content_type_for(filename, content_type)  # an unsupported type fails fast, in-line
    if kind != "application/pdf" and len(data) <= INLINE_BYTES:
        title, text, kind = document_text(data, filename, content_type)
        return ParsedDocument(title, text, kind, chunk_text(text))
    result = await _in_worker(_parse, (data, filename, content_type, limits), limits, filename)
    if result[0] == "error":
        raise DocumentError(result[1])
    title, text, kind, chunks = result
    return ParsedDocument(title, text, kind, chunks)


async def chunk_document(text: str, limits: ParseLimits | None = None) -> list[str]:
    """``chunk_text`` off the event loop (in-line for short texts)."""
    if len(text) <= INLINE_BYTES:
        return chunk_text(text)
    limits = limits or ParseLimits()
    chunks: list[str] = await _in_worker(_chunk, (text,), limits, "document")
    return chunks
