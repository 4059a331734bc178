"""AI-Memory: caller memory and the knowledge base, in-process or as the :8100 service.

Stable entry points for the other parts of the agent:

- ``memory_store_for(settings, runtime) -> MemoryStore``: local (SQLite/PostgreSQL by
  ``database_url``) or HTTP (``memory_backend=http``), cached on the runtime.
- ``fetch_caller_context(runtime, phone) -> CallerContext``: profile + top memories, called once at
  stream start; bounded by a timeout, never raises.
- ``extract_and_store_after_call(runtime, call_sid)``: learn from a finished call's transcript;
  ``schedule_after_call(runtime, call_sid)`` runs it in the background (off the call path).
- ``delete_caller(runtime, phone)``: privacy delete of profile, memories, calls and transcripts.

The brain's prompt packer consumes ``CallerContext`` (``.name``, ``.summary()``) and ``KnowledgeHit``
from ``store.search_knowledge(query)``; per-turn memory search is ``store.retrieve(phone, query)``.
"""

from phone_agent.memory.base import (
    CallerContext,
    KnowledgeDocumentInfo,
    KnowledgeHit,
    MemoryItem,
    MemoryStore,
)
from phone_agent.memory.calls import (
    delete_caller,
    extract_and_store_after_call,
    fetch_caller_context,
    schedule_after_call,
)
from phone_agent.memory.factory import memory_store_for

__all__ = [
    "CallerContext",
    "KnowledgeDocumentInfo",
    "KnowledgeHit",
    "MemoryItem",
    "MemoryStore",
    "delete_caller",
    "extract_and_store_after_call",
    "fetch_caller_context",
    "memory_store_for",
    "schedule_after_call",
]
