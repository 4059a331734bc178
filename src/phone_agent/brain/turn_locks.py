"""``ConversationLocks``: one turn at a time per ``/v1/chat`` conversation in this process.

Messages of one conversation sent concurrently queue behind each other, so every turn reads the
history the previous turn wrote. The locks live on the process's runtime; an entry exists only
while a turn holds or waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ConversationLocks:
    """One lock per conversation id, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, conversation_id: str | None) -> AsyncIterator[None]:
        """Hold the conversation's lock for one turn (a new conversation needs none)."""
        if conversation_id is None:
            yield
            return
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users == 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
