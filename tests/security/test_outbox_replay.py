"""Finding 2: the memory outbox is replayed at start and on a timer, idempotently, deletes first.

Before: 5 caller deletions queued while the memory service was down stayed undone after both
processes restarted, until an unrelated write happened; a replayed write was applied again; and a
privacy delete waited behind every write queued before it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.testclient import TestClient

from phone_agent.app import create_app
from phone_agent.config import Settings
from phone_agent.memory.base import MemoryItem
from phone_agent.memory.client import HTTPMemoryStore
from phone_agent.memory.outbox import Outbox
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from tests.api.test_memory import TOKEN, MemoryServiceThread, free_port, stored_contents
from tests.conftest import make_settings
from tests.security.memory_service import eventually

CALLERS = [f"+1555020{i:04d}" for i in range(5)]
AUTH = {"authorization": f"Bearer {TOKEN}"}


def orchestrator_settings(tmp_path: Path, port: int) -> Settings:
    return make_settings(
        tmp_path,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/orchestrator.sqlite",
        PHONE_AGENT_DATA_DIR=str(tmp_path / "orchestrator-data"),
        PHONE_AGENT_MEMORY_BACKEND="http",
        PHONE_AGENT_MEMORY_URL=f"http://127.0.0.1:{port}",
        PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN,
        PHONE_AGENT_MEMORY_TIMEOUT_SECONDS="0.5",
    )


async def test_deletes_queued_before_a_restart_are_delivered_at_start(
    service_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    service = MemoryServiceThread(service_settings, port)
    service.start()
    seed = HTTPMemoryStore(
        base_url=f"http://127.0.0.1:{port}", token=TOKEN, outbox_path=tmp_path / "seed.sqlite3"
    )
    for caller in CALLERS:
        await seed.store_memories(caller, [MemoryItem(content=f"Private fact of {caller}.")])
    assert await seed.flush(within=30) == 0
    await seed.aclose()
    assert len(stored_contents(tmp_path / "service.sqlite")) == 5
    service.stop()  # the memory service goes down

    settings = orchestrator_settings(tmp_path, port)
    runtime = Runtime.create(settings, "orchestrator")  # the orchestrator queues 5 privacy deletes
    await upgrade(runtime.engine)
    async with runtime.use() as services:
        for caller in CALLERS:
            assert await services.forget_caller(caller) is True
    await runtime.close()  # ... and stops with them queued
    assert await Outbox(tmp_path / "orchestrator-data" / "memory-outbox.sqlite3").pending() == 5

    service = MemoryServiceThread(service_settings, port)
    service.start()  # both come back; nothing new is written
    try:
        with TestClient(create_app(settings, "orchestrator", migrate=True)):
            assert await eventually(lambda: stored_contents(tmp_path / "service.sqlite") == [], 20)
    finally:
        service.stop()


async def test_entries_another_process_queues_are_replayed_on_a_timer(
    service_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    service = MemoryServiceThread(service_settings, port)
    service.start()
    settings = orchestrator_settings(tmp_path, port)
    try:
        with TestClient(create_app(settings, "orchestrator", migrate=True)):
            await asyncio.sleep(0.5)  # the server's outbox is idle and empty
            cli = Outbox(
                tmp_path / "orchestrator-data" / "memory-outbox.sqlite3"
            )  # e.g. `phone-agent memory`
            body = {"phone": CALLERS[0], "items": [{"content": "Queued by another process."}]}
            await cli.append("POST", "/memory/store", body)
            cli.close()
            assert await eventually(
                lambda: stored_contents(tmp_path / "service.sqlite") == ["Queued by another process."], 20
            )
    finally:
        service.stop()


def test_a_replayed_request_id_is_applied_once(service_settings: Settings) -> None:
    with TestClient(create_app(service_settings, "memory", migrate=True)) as api:
        phone = CALLERS[1]
        api.post("/memory/store", json={"phone": phone, "items": [{"content": "Old fact."}]}, headers=AUTH)
        delete = {**AUTH, "Idempotency-Key": "delete-0001"}
        assert api.delete(f"/memory/callers/{phone}", headers=delete).json() == {"deleted": True}
        newer = {"phone": phone, "items": [{"content": "Stored after the delete."}]}
        assert api.post(
            "/memory/store", json=newer, headers={**AUTH, "Idempotency-Key": "store-0002"}
        ).json() == {"stored": 1}
        # the delete's answer was lost and the outbox sends it again: it must not erase the newer fact
        assert api.delete(f"/memory/callers/{phone}", headers=delete).json() == {"deleted": True}
        caller = api.get(f"/memory/callers/{phone}", headers=AUTH).json()
        assert [m["content"] for m in caller["memories"]] == ["Stored after the delete."]
        # a replayed store is answered from the record, not applied again
        api.post("/memory/store", json=newer, headers={**AUTH, "Idempotency-Key": "store-0002"})
        assert len(api.get(f"/memory/callers/{phone}", headers=AUTH).json()["memories"]) == 1
        too_long = api.delete(f"/memory/callers/{phone}", headers={**AUTH, "Idempotency-Key": "x" * 65})
        assert too_long.status_code == 422


async def test_deletes_replay_first_and_drop_older_writes_of_their_caller(
    service_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    client = HTTPMemoryStore(
        base_url=f"http://127.0.0.1:{port}", token=TOKEN, outbox_path=tmp_path / "outbox.sqlite3", timeout=0.5
    )
    try:
        await client.store_memories(CALLERS[2], [MemoryItem(content="To be forgotten.")])
        for i in range(20):
            await client.store_memories(CALLERS[3], [MemoryItem(content=f"Backlog fact {i}.")])
        await client.delete_caller(CALLERS[2])
        head = await client.outbox.head(n=2)
        assert [(e.method, e.phone) for e in head] == [("DELETE", CALLERS[2]), ("POST", CALLERS[3])]
        assert await client.outbox.pending() == 21  # the write it supersedes is gone
        assert len({e.request_id for e in await client.outbox.head(n=100)}) == 21
        service = MemoryServiceThread(service_settings, port)
        service.start()
        try:
            assert await client.flush(within=60) == 0
            assert stored_contents(tmp_path / "service.sqlite") == [f"Backlog fact {i}." for i in range(20)]
        finally:
            service.stop()
    finally:
        await client.aclose()
