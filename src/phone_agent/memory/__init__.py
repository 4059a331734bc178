"""AI-Memory: caller memory and the knowledge base, in-process or as the :8100 service.

Stable entry points for the other parts of the agent:

- ``build_memory_store(settings, engine=..., sessions=...) -> MemoryStore``: local (SQLite/PostgreSQL
  by ``database_url``) or HTTP (``memory_backend=http``); the app's ``Services`` holds one.
- ``fetch_caller_context(store, phone) -> CallerContext``: profile + top memories, called once at
  stream start; bounded by a timeout, never raises.
- ``extract_and_store_after_call(settings=..., sessions=..., store=..., call_sid=...)``: learn from a
  finished call's transcript (the app runs it in the background, off the call path).
- ``delete_caller(store=..., local=..., phone=...)``: privacy delete of profile, memories, calls and
  transcripts.

The brain's prompt packer consumes ``CallerContext`` (``.name``, ``.summary()``) and ``KnowledgeHit``
from ``store.search_knowledge(query)``; per-turn memory search is ``store.retrieve(phone, query)``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phone_agent.memory.base import (
        CallerContext,
        KnowledgeDocumentInfo,
        KnowledgeHit,
        MemoryItem,
        MemoryStore,
    )
    from phone_agent.memory.calls import delete_caller, extract_and_store_after_call, fetch_caller_context
    from phone_agent.memory.factory import build_memory_store, local_store

# Imported on first use, so importing the package (every CLI start) stays cheap.
_EXPORTS = {
    "CallerContext": "base",
    "KnowledgeDocumentInfo": "base",
    "KnowledgeHit": "base",
    "MemoryItem": "base",
    "MemoryStore": "base",
    "delete_caller": "calls",
    "extract_and_store_after_call": "calls",
    "fetch_caller_context": "calls",
    "build_memory_store": "factory",
    "local_store": "factory",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'phone_agent.memory' has no attribute {name!r}")
    return getattr(import_module(f"phone_agent.memory.{_EXPORTS[name]}"), name)


__all__ = [
    "CallerContext",
    "KnowledgeDocumentInfo",
    "KnowledgeHit",
    "MemoryItem",
    "MemoryStore",
    "build_memory_store",
    "delete_caller",
    "extract_and_store_after_call",
    "fetch_caller_context",
    "local_store",
]
