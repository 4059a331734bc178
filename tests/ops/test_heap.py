"""The heap is collected and trimmed once the calls have ended and the process is idle, never
during a call (``ops/heap.py``)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from phone_agent.ops.heap import HeapTrimmer, freeze_start_up_heap
from phone_agent.ops.load import LoadMonitor

IDLE = 0.05


class CallState:
    """Stands for a call's pipeline: objects that point at each other (freed only by the collector)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Only the trimmer's collection may free a cycle here."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def trimmer(load: LoadMonitor, trims: list[int]) -> HeapTrimmer:
    return HeapTrimmer(load, idle_seconds=IDLE, trim=lambda: bool(trims.append(1)), rss=lambda: 100)


async def test_a_call_s_cycles_are_freed_and_the_heap_trimmed_once_the_process_is_idle(
    no_automatic_gc: None,
) -> None:
    load, trims = LoadMonitor(max_calls=0, max_lag_ms=0), []
    heap = trimmer(load, trims)
    running = asyncio.create_task(heap.run())
    with load.call("CA1"):
        state = CallState()
        gone = weakref.ref(state)
        del state
        await asyncio.sleep(6 * IDLE)
        assert gone() is not None and trims == []  # never during a call
    for _ in range(200):
        if trims:
            break
        await asyncio.sleep(IDLE)
    await asyncio.sleep(6 * IDLE)  # idle on: no second trim without another call
    running.cancel()
    assert gone() is None and trims == [1] and len(heap.trims) == 1
    assert heap.trims[0].collected >= 1


async def test_no_trim_before_any_call_or_while_a_call_is_reserved() -> None:
    load, trims = LoadMonitor(max_calls=0, max_lag_ms=0), []
    heap = trimmer(load, trims)
    assert not heap.due()  # a fresh process: nothing to give back
    with load.call("CA1"):
        pass
    load.reserve("CA2")  # answered at /phone/incoming: its stream is about to start
    assert not heap.due()
    load.release("CA2")
    assert heap.due()
    await heap.trim_now()
    assert not heap.due() and trims == [1]


def test_serve_keeps_start_up_objects_out_of_later_collections() -> None:
    assert gc.get_freeze_count() == 0
    try:
        frozen = freeze_start_up_heap()
        assert frozen == gc.get_freeze_count() > 10_000  # modules, classes, ... of this process
        gc.collect()
        assert gc.get_freeze_count() == frozen  # a full collection leaves them where they are
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
