"""``TaskOwner``: every background task of ours has an owner that cancels it at shutdown.

A bare ``asyncio.create_task`` is only weakly referenced by the loop and outlives whatever started
it; the process's ``Runtime`` owns one ``TaskOwner`` instead, so learning after a call, caller
prefetches and the retention loop are all cancelled (and awaited) when the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from loguru import logger

T = TypeVar("T")


class TaskOwner:
    """A set of named background tasks: failures are logged, ``aclose()`` cancels what is left."""

    def __init__(self, name: str = "phone-agent") -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T] | None:
        """Run ``coro`` in the background; its exception (if any) is logged, never lost or raised.

        Returns None (and closes ``coro``) once the owner is shutting down.
        """
        if self._closed:
            coro.close()
            logger.warning("{}: shutting down, not starting {}", self.name, name)
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.opt(exception=exc).error("background task {} failed: {}", task.get_name(), exc)

    @property
    def closed(self) -> bool:
        """True once ``aclose`` has begun: nothing new starts."""
        return self._closed

    @property
    def pending(self) -> list[asyncio.Task[Any]]:
        """Tasks still running."""
        return [t for t in self._tasks if not t.done()]

    async def wait(self) -> None:
        """Wait for the running tasks to finish by themselves (wrap in ``asyncio.timeout`` to bound it)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def aclose(self) -> None:
        """Cancel every task and wait until each has ended; no new task starts afterwards."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
