"""The memory service API (bearer token, JSON shapes, uploads) and its HTTP client with the outbox."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from phone_agent.app import create_app
from phone_agent.config import Settings
from phone_agent.errors import StoreError
from phone_agent.memory.base import MemoryItem
from phone_agent.memory.client import HTTPMemoryStore
from tests.conftest import make_settings

TOKEN = "memory-token-123"
PHONE = "+15551230001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MemoryServiceThread:
    """The memory role under uvicorn in a thread, on a fixed port (so it can be stopped and restarted)."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings, self.port = settings, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        app = create_app(self.settings, "memory", migrate=True)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "memory service did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(30)


@pytest.fixture
def service_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/service.sqlite",
        PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN,
    )


@pytest.fixture
def api(service_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings, "memory", migrate=True)) as client:
        yield client


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_every_route_needs_the_service_token(api: TestClient) -> None:
    assert api.get(f"/memory/callers/{PHONE}").status_code == 401
    response = api.post("/memory/retrieve", json={"query": "x"}, headers=auth("wrong"))
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert api.get("/health").status_code == 200  # health stays open for probes


def test_without_a_token_only_loopback_clients_are_served(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, "memory", migrate=True)
    with TestClient(app, client=("203.0.113.7", 5000)) as remote:
        assert remote.get(f"/memory/callers/{PHONE}").status_code == 403
    with TestClient(app, client=("127.0.0.1", 5000)) as local:
        assert local.get(f"/memory/callers/{PHONE}").json()["known"] is False


def test_store_retrieve_caller_and_delete_over_json(api: TestClient) -> None:
    body = {
        "phone": PHONE,
        "name": "Maria Lopez",
        "profile": {"topic": "home insurance"},
        "items": [{"content": "Asked about home insurance.", "key": "topic"}],
    }
    assert api.post("/memory/store", json=body, headers=auth()).json() == {"stored": 1}
    assert api.post("/memory/store", json=body, headers=auth()).json() == {"stored": 1}  # replay: no double
    items = api.post("/memory/retrieve", json={"phone": PHONE, "query": "insurance"}, headers=auth()).json()
    assert [(i["content"], i["key"]) for i in items["items"]] == [("Asked about home insurance.", "topic")]
    caller = api.get(f"/memory/callers/{PHONE}", headers=auth()).json()
    assert (caller["name"], caller["profile"], caller["known"]) == (
        "Maria Lopez",
        {"topic": "home insurance"},
        True,
    )
    assert len(caller["memories"]) == 1
    assert api.delete(f"/memory/callers/{PHONE}", headers=auth()).json() == {"deleted": True}
    assert api.get(f"/memory/callers/{PHONE}", headers=auth()).json()["known"] is False
    assert api.post("/memory/store", json={"phone": "1", "items": []}, headers=auth()).status_code == 422


def test_knowledge_upload_list_search_delete(api: TestClient) -> None:
    html = (
        b"<html><head><title>Opening hours</title><style>p {}</style></head>"
        b"<body><p>We open at 9 on Saturdays.</p></body></html>"
    )
    response = api.post("/knowledge/files", files={"file": ("hours.html", html, "text/html")}, headers=auth())
    assert response.status_code == 201
    doc = response.json()
    assert (doc["title"], doc["content_type"], doc["chunks"]) == ("Opening hours", "text/html", 1)
    bad = api.post(
        "/knowledge/files", files={"file": ("x.exe", b"MZ", "application/octet-stream")}, headers=auth()
    )
    assert bad.status_code == 422 and "unsupported document type" in bad.json()["detail"]
    hits = api.post("/knowledge/search", json={"query": "open on Saturday"}, headers=auth()).json()["hits"]
    assert [(h["title"], h["text"]) for h in hits] == [("Opening hours", "We open at 9 on Saturdays.")]
    assert [d["id"] for d in api.get("/knowledge/documents", headers=auth()).json()["documents"]] == [
        doc["id"]
    ]
    assert api.post("/knowledge/reindex", headers=auth()).json() == {"chunks": 1}
    assert api.delete(f"/knowledge/documents/{doc['id']}", headers=auth()).json() == {"deleted": True}
    assert api.get("/knowledge/documents", headers=auth()).json() == {"documents": []}


def stored_contents(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return [row[0] for row in conn.execute("SELECT content FROM memories ORDER BY id")]


async def test_outbox_keeps_writes_while_the_service_is_down_and_replays_them_in_order(
    service_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    client = HTTPMemoryStore(
        base_url=f"http://127.0.0.1:{port}", token=TOKEN, outbox_path=tmp_path / "outbox.sqlite3", timeout=2.0
    )
    service = MemoryServiceThread(service_settings, port)
    try:
        for i in range(100):  # the service is not running: every write waits on disk
            await client.store_memories(PHONE, [MemoryItem(content=f"Fact number {i}.")])
        assert await client.outbox.pending() == 100
        with pytest.raises(StoreError, match="unreachable"):
            await client.caller_context(PHONE)
        service.start()
        assert await client.flush(within=60) == 0
        assert stored_contents(tmp_path / "service.sqlite") == [f"Fact number {i}." for i in range(100)]
        # a request delivered twice (answer lost, then re-sent) stores nothing twice
        body = {"phone": PHONE, "items": [{"content": "Fact number 7."}], "name": None, "profile": None}
        await client.outbox.append("POST", "/memory/store", body)
        await client.outbox.append("POST", "/memory/store", body)
        assert await client.flush(within=60) == 0
        assert len(stored_contents(tmp_path / "service.sqlite")) == 100
        # once online, a write is confirmed before store_memories returns
        await client.store_memories(PHONE, [MemoryItem(content="Fact number 100.")])
        assert await client.outbox.pending() == 0
        assert stored_contents(tmp_path / "service.sqlite")[-1] == "Fact number 100."
    finally:
        await client.aclose()
        service.stop()


async def test_outbox_survives_a_restart_of_the_client(service_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    outbox = tmp_path / "outbox.sqlite3"
    first = HTTPMemoryStore(base_url=f"http://127.0.0.1:{port}", token=TOKEN, outbox_path=outbox)
    for i in range(3):
        await first.store_memories(PHONE, [MemoryItem(content=f"Before restart {i}.")])
    await first.aclose()  # the process goes away with writes still queued
    service = MemoryServiceThread(service_settings, port)
    service.start()
    second = HTTPMemoryStore(base_url=f"http://127.0.0.1:{port}", token=TOKEN, outbox_path=outbox)
    try:
        assert await second.flush(within=60) == 0
        assert stored_contents(tmp_path / "service.sqlite") == [f"Before restart {i}." for i in range(3)]
    finally:
        await second.aclose()
        service.stop()


def test_every_role_applies_retention_to_its_own_database_at_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PHONE_AGENT_MEMORY_RETENTION_DAYS="30")
    database = tmp_path / "test.db"
    with TestClient(create_app(settings, "orchestrator", migrate=True)):
        pass  # migrated
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO calls (call_sid, from_number, direction, status, started_at) VALUES "
            "('CAold', '+15551230001', 'inbound', 'completed', '2020-01-01 00:00:00'), "
            "('CAnew', '+15551230001', 'inbound', 'completed', datetime('now'))"
        )
    with TestClient(create_app(settings, "orchestrator", migrate=True)):
        deadline = time.monotonic() + 30
        while True:
            with sqlite3.connect(database) as conn:
                sids = [row[0] for row in conn.execute("SELECT call_sid FROM calls ORDER BY id")]
            if sids == ["CAnew"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert sids == ["CAnew"]
