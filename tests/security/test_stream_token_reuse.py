"""Finding 6: a stream token opened more than one stream.

A second concurrent stream on one token ran two pipelines for one call; a token replayed after the
call completed was accepted, greeted the caller by name and appended turns to the finished call.
Now the stream claims its call in the shared database: the second stream, on this process or on
another voice bridge, and any replay after the call ended are closed with 1008 before a pipeline
is built.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import is_silent
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.running_agent import SHORT_GREETINGS


def _again(agent: Any, first: MediaStreamCaller) -> MediaStreamCaller:
    """Another stream with the first one's token, for the first one's call."""
    return agent.caller(token=first.custom_parameters["token"], call_sid=first.call_sid)


def _heard(caller: MediaStreamCaller) -> bool:
    return any(not is_silent(a.audio) for a in caller.agent_audio)


async def _wait_for_end(db_rows: Any, call_sid: str) -> Call:
    for _ in range(200):
        [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
        if call.ended_at is not None:
            return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_sid} never ended")


async def test_a_second_stream_and_a_replay_are_refused(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        async with agent.caller() as first:
            await first.wait_for_agent_audio(timeout=30)
            async with _again(agent, first) as second:
                await second.wait_for_close(timeout=15)
            await first.wait_for_quiet(0.3, timeout=30)
        call = await _wait_for_end(db_rows, first.call_sid)
        turns_before = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id))
        async with _again(agent, first) as replay:
            await replay.wait_for_close(timeout=15)

    assert (second.close_code, second.ended_by, _heard(second)) == (1008, "server_closed", False)
    assert (replay.close_code, replay.ended_by, _heard(replay)) == (1008, "server_closed", False)
    assert first.ended_by == "caller" and _heard(first)
    [after] = await db_rows(select(Call).where(Call.call_sid == first.call_sid))
    assert (after.status, after.end_reason, after.ended_at) == ("completed", call.end_reason, call.ended_at)
    turns_after = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id))
    assert [t.id for t in turns_after] == [t.id for t in turns_before]  # nothing appended by the replay
    assert [t.role for t in turns_after] == ["agent"]  # one greeting: one pipeline ran


async def test_a_second_stream_on_another_voice_bridge_is_refused(agent_factory: Any, db_rows: Any) -> None:
    # two processes' worth of app (two servers, two runtimes) sharing one database
    with agent_factory(**SHORT_GREETINGS) as bridge_a, agent_factory(**SHORT_GREETINGS) as bridge_b:
        async with bridge_a.caller() as first:
            await first.wait_for_agent_audio(timeout=30)
            async with _again(bridge_b, first) as second:
                await second.wait_for_close(timeout=15)
        await _wait_for_end(db_rows, first.call_sid)

    assert (second.close_code, _heard(second)) == (1008, False)
    assert _heard(first) and first.ended_by == "caller"
    [call] = await db_rows(select(Call).where(Call.call_sid == first.call_sid))
    assert call.instance_id is None  # released by bridge A when the call ended
