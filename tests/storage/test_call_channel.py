"""Migration 0014: every call gets a channel; conversations of /v1/chat stored before it become "chat",
calls stay "phone" (on SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from phone_agent.storage.db import create_engine
from phone_agent.storage.migrate import upgrade


async def test_existing_calls_get_their_channel(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0014_call_channel-1")  # the schema just before the channel column
        async with engine.begin() as conn:
            for sid, direction in (("CA-1", "inbound"), ("chat-1", "chat"), ("CA-2", "outbound")):
                await conn.execute(
                    text(
                        "INSERT INTO calls (call_sid, direction, status, started_at) "
                        "VALUES (:sid, :direction, 'completed', CURRENT_TIMESTAMP)"
                    ),
                    {"sid": sid, "direction": direction},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = dict((await conn.execute(text("SELECT call_sid, channel FROM calls"))).all())
        assert rows == {"CA-1": "phone", "chat-1": "chat", "CA-2": "phone"}
    finally:
        await engine.dispose()
