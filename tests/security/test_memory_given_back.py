"""Finding 12 (part): the process grew from 184 MB to 1,028 MB over the probing and never gave it back.

Python's own heap returned to its idle size after abusive calls; what stayed was native memory freed
but kept: onnxruntime's CPU arena (grown to the largest batch of calls, never shrunk) and glibc's free
pages. Now the shared ONNX sessions run without an arena, and once the calls have ended and the
process is idle it collects and trims its heap (``ops/heap.py``). The RSS figure is a bench
(``bench/abuse.py``: RSS back within 10 % of idle); these tests check the mechanism.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from phone_agent.voice import shared_models
from tests.fakes.audio import FRAME_BYTES, ULAW_SILENCE
from tests.running_agent import SHORT_GREETINGS

FLOOD = json.dumps(
    {
        "event": "media",
        "media": {"track": "inbound", "payload": base64.b64encode(ULAW_SILENCE * FRAME_BYTES * 50).decode()},
    }
)


async def test_the_heap_is_trimmed_once_an_abusive_call_has_ended_never_during_it(agent_factory: Any) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        heap = agent.app.state.runtime.heap
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=30)
            for _ in range(300):  # a second of audio per message, as fast as the socket takes them
                await caller.send_raw(FLOOD)
            await asyncio.sleep(2 * heap.idle_seconds)
            during = list(heap.trims)
        for _ in range(int(50 * heap.idle_seconds)):  # the agent's loop runs in its own thread: poll
            if heap.trims:
                break
            await asyncio.sleep(0.2)
        trims = list(heap.trims)

    assert during == []  # a full collection would stop the call's event loop
    assert len(trims) == 1 and trims[0].rss_before > 0 and trims[0].rss_after > 0


def test_the_shared_models_keep_no_arena_that_only_grows() -> None:
    shared_models.close_models()
    for session in (shared_models.silero_batcher().session, shared_models.smart_turn_pool().session):
        assert session.get_session_options().enable_cpu_mem_arena is False
