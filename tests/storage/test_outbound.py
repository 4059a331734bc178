"""Outbound call rows and the do-not-call list on SQLite and PostgreSQL: callbacks that outrun the
create request, a final status kept over a late earlier one, and the privacy delete of a callee."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from phone_agent.memory.factory import local_store
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.outbound import (
    add_do_not_call,
    attach_call,
    create_outbound,
    on_do_not_call,
    outbound_by_sid,
    record_answered_by,
    record_status,
    remove_do_not_call,
)
from phone_agent.storage.tables import Call, DoNotCall, OutboundCall
from tests.conftest import make_settings

CALLEE = "+15551230077"


async def test_outbound_rows_and_the_callee_delete(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = session_factory(engine)
    store = local_store(make_settings(tmp_path, DATABASE_URL=database_url), engine=engine, sessions=sessions)
    try:
        await create_outbound(sessions, ref="r1", to=CALLEE, purpose="your booking", requested_by="api")
        # the create request's answer and a status callback attach the same call at the same moment
        views = await asyncio.gather(
            *(attach_call(sessions, ref="r1", call_sid="CA1", from_number="+15005550006") for _ in range(3))
        )
        assert {v.call_sid for v in views if v} == {"CA1"}
        await record_status(sessions, ref="r1", call_sid="CA1", status="ringing", sequence="1")
        await record_status(sessions, ref="r1", call_sid="CA1", status="completed", duration="12")
        await record_status(sessions, ref="r1", call_sid="CA1", status="in-progress")  # late, out of order
        await record_answered_by(sessions, ref="r1", answered_by="human")
        view = await outbound_by_sid(sessions, "CA1")
        assert view is not None and view.status == "completed" and view.answered_by == "human"
        assert [e["status"] for e in view.events] == ["ringing", "completed", "in-progress"]
        assert view.events[1]["duration"] == "12"
        async with sessions() as session:
            [call] = (await session.execute(select(Call))).scalars()
        assert (call.direction, call.to_number, call.status) == ("outbound", CALLEE, "ringing")

        assert await add_do_not_call(sessions, "+1 555 123 0077", note="asked", added_by="test")
        assert not await add_do_not_call(sessions, CALLEE, added_by="test")  # once
        assert await on_do_not_call(sessions, CALLEE)
        assert await store.delete_caller(CALLEE)
        async with sessions() as session:
            for table in (OutboundCall, DoNotCall, Call):
                assert (await session.execute(select(table))).first() is None, table.__tablename__
        assert not await remove_do_not_call(sessions, CALLEE)
    finally:
        await store.aclose()
        await engine.dispose()
