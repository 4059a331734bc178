"""Give memory back once the calls have ended (issue 13: the process grew and never shrank).

After a round of abusive calls (floods, dropped connections, junk) the agent stayed 70 MB above its
idle RSS while Python's own heap (tracemalloc) was back within 3 MB of idle: the rest was native
memory freed but kept — onnxruntime's CPU arena, which grows to the largest batch of calls and never
shrinks (now off: ``voice/shared_models.py``), and glibc's free pages, which it hands back only on
``malloc_trim``. A call's pipeline is also a web of objects that point at each other, freed only by
the cycle collector, whose oldest generation runs rarely. So when this process has had no call for
``IDLE_SECONDS`` after one ended, ``HeapTrimmer`` runs a full collection and ``malloc_trim(0)``, and
logs what it gave back. It never runs during a call: a full collection stops the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from loguru import logger

from phone_agent.ops.load import LoadMonitor

IDLE_SECONDS = 5.0  # no call for this long after one ended: trim
MB = 1 << 20


def freeze_start_up_heap() -> int:
    """Keep what start-up built out of every later collection; the number of objects frozen.

    After start-up the process holds ~300k long-lived objects (modules, models, routes, schemas).
    Each full collection walks all of them: with 40 calls it stopped the event loop for 100-165 ms
    (every call's audio with it). Frozen, a full collection walks only what the calls made since
    (20-40 ms). Only ``serve`` freezes: a process that starts many apps (tests) would keep every
    frozen object for good.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: free heap pages go back to the system. False where there is none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return False
    if trim is None:  # musl, macOS: nothing to call
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))


def rss_bytes() -> int:
    """This process's resident set size."""
    return int(psutil.Process().memory_info().rss)


@dataclass
class Trim:
    """What one trim did."""

    collected: int  # unreachable objects the full collection freed
    rss_before: int
    rss_after: int


class HeapTrimmer:
    """Collects and trims the heap when the process has gone idle after calls (see the module doc)."""

    def __init__(
        self,
        load: LoadMonitor,
        *,
        idle_seconds: float = IDLE_SECONDS,
        collect: Callable[[], int] = gc.collect,
        trim: Callable[[], bool] = malloc_trim,
        rss: Callable[[], int] = rss_bytes,
    ) -> None:
        self.load, self.idle_seconds = load, idle_seconds
        self._collect, self._trim, self._rss = collect, trim, rss
        self._trimmed_after = load.ended  # calls ended when it last trimmed
        self.trims: list[Trim] = []

    def due(self) -> bool:
        """True when a call has ended since the last trim and none is running or reserved now."""
        return self.load.ended > self._trimmed_after and self.load.calls == 0 and not self.load.reserved()

    async def trim_now(self) -> Trim:
        """A full collection, then ``malloc_trim`` off the event loop (it walks the whole heap)."""
        self._trimmed_after = self.load.ended
        before = self._rss()
        collected = self._collect()
        await asyncio.to_thread(self._trim)
        done = Trim(collected, before, self._rss())
        self.trims.append(done)
        logger.info(
            "heap trimmed after calls: {} objects collected, RSS {:.0f} → {:.0f} MB",
            collected, before / MB, done.rss_after / MB,
        )  # fmt: skip
        return done

    async def run(self) -> None:
        """Forever: trim once the process has been idle for ``idle_seconds`` after a call ended."""
        while True:
            await asyncio.sleep(self.idle_seconds / 2)
            if self.due() and self.load.since_last_call_ended() >= self.idle_seconds:
                await self.trim_now()
