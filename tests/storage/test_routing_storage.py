"""Routing rules and the routing record of a call on SQLite and PostgreSQL: order kept without gaps,
fired rules and tags appended to the call's row, a caller's number forgotten from every rule."""

from __future__ import annotations

from sqlalchemy import select

from phone_agent.storage import routing
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call


async def test_rules_order_record_and_forget(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        ids = [
            await routing.add_rule(
                sessions, name=name, conditions={"numbers": ["+15550106666"]}, action={"type": "reject"}
            )
            for name in ("a", "b", "c")
        ]

        async def order() -> list[tuple[int, str]]:
            return [(r.position, r.name) for r in await routing.list_rules(sessions)]

        await routing.move_rule(sessions, ids[2], -5)  # clamped to the top
        assert await order() == [(1, "c"), (2, "a"), (3, "b")]
        await routing.delete_rule(sessions, ids[0])
        assert await order() == [(1, "c"), (2, "b")]
        await routing.set_enabled(sessions, ids[1], False)
        assert [r.name for r in await routing.list_rules(sessions, enabled_only=True)] == ["c"]

        event = {"rule_id": ids[2], "name": "c", "action": "tag", "stage": "incoming", "detail": "d"}
        await routing.record_routing(sessions, call_sid="CA-r", event=event, tag="vip")
        await routing.record_routing(
            sessions, call_sid="CA-r", event={**event, "name": "b"}, tag="vip", end_reason="routed → reject"
        )
        async with sessions() as session:
            call = (await session.execute(select(Call).where(Call.call_sid == "CA-r"))).scalar_one()
        assert call.routing_rule == "b" and call.tags == ["vip"] and call.end_reason == "routed → reject"
        assert [e["name"] for e in call.routing_events] == ["c", "b"]
        assert await routing.routing_events(sessions, "CA-r") == call.routing_events

        assert await routing.forget_number(sessions, "(555) 010-6666") == 2
        assert all(r.conditions["numbers"] == [] for r in await routing.list_rules(sessions))
    finally:
        await engine.dispose()
