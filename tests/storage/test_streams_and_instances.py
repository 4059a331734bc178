"""One stream per call and crash recovery, on embedded SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from phone_agent.storage.calls import finish_call
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.instances import beat, close_orphaned_calls, register_instance, stop_instance
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.streams import claim_stream, register_incoming
from phone_agent.storage.tables import Call, Instance, utcnow


async def _sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    await upgrade(engine)
    return engine, session_factory(engine)


async def test_concurrent_webhooks_share_one_token_and_one_stream_claims_the_call(database_url: str) -> None:
    engine, sessions = await _sessions(database_url)
    try:
        incoming = await asyncio.gather(
            *(
                register_incoming(
                    sessions,
                    call_sid="CA-race",
                    from_number="+1 555 123 0001",
                    to_number="+15559870000",
                    direction="inbound",
                    now=1_000_000 + i % 2,  # the retries straddle a second
                    ttl_seconds=300,
                )
                for i in range(10)
            )
        )
        [expires] = {r.token_expires for r in incoming}  # one token, whichever retry came first
        assert expires in (1_000_300, 1_000_301)
        assert sum(not r.repeated for r in incoming) == 1
        assert {r.caller for r in incoming} == {"+15551230001"}

        claims = await asyncio.gather(
            *(claim_stream(sessions, call_sid="CA-race", instance_id=f"i{i}") for i in range(10))
        )
        assert claims.count(None) == 1
        assert set(claims) - {None} == {"the call already has a media stream"}
        # an unregistered call (no webhook): the first stream creates and claims it
        fresh = await asyncio.gather(
            *(claim_stream(sessions, call_sid="CA-direct", instance_id=f"i{i}") for i in range(5))
        )
        assert fresh.count(None) == 1

        again = await register_incoming(
            sessions,
            call_sid="CA-race",
            from_number="+15551230001",
            to_number=None,
            direction="inbound",
            now=1_000_010,
            ttl_seconds=300,
        )
        assert again.token_expires is None  # streaming: no second token
        await finish_call(sessions, call_sid="CA-direct", status="completed", end_reason="hangup")
        assert await claim_stream(sessions, call_sid="CA-direct", instance_id="late") == "the call has ended"
    finally:
        await engine.dispose()


async def test_calls_of_a_dead_instance_are_closed_once(database_url: str) -> None:
    engine, sessions = await _sessions(database_url)
    try:
        for instance in ("alive", "dead", "stopped"):
            await register_instance(sessions, instance_id=instance, role="voice-bridge")
        for sid, holder in (("CA-a", "alive"), ("CA-d", "dead"), ("CA-s", "stopped"), ("CA-x", "gone")):
            assert await claim_stream(sessions, call_sid=sid, instance_id=holder) is None
        await claim_stream(sessions, call_sid="CA-done", instance_id="dead")
        await finish_call(sessions, call_sid="CA-done", status="completed", end_reason="hangup", release=True)
        await stop_instance(sessions, "stopped")
        async with transaction(sessions) as session:
            dead = await session.get(Instance, "dead")
            assert dead is not None
            dead.heartbeat_at = utcnow() - timedelta(minutes=5)
        await beat(sessions, "alive")

        results = await asyncio.gather(
            *(close_orphaned_calls(sessions, dead_after=timedelta(seconds=60)) for _ in range(3))
        )
        closed = sorted(sid for result in results for sid in result)
        assert closed == ["CA-d", "CA-s", "CA-x"]  # each exactly once, whoever looked first
        async with sessions() as session:
            calls = {c.call_sid: c for c in (await session.execute(select(Call))).scalars()}
        for sid in closed:
            call = calls[sid]
            assert (call.status, call.end_reason, call.instance_id) == ("completed", "agent_crashed", None)
            assert call.ended_at is not None
        assert (calls["CA-a"].instance_id, calls["CA-a"].ended_at) == ("alive", None)
        assert calls["CA-done"].end_reason == "hangup"
    finally:
        await engine.dispose()
