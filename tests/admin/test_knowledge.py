"""Knowledge & memory: documents (upload, find, delete, 413), callers, memories, delete a caller."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from phone_agent.memory import MemoryItem
from phone_agent.storage.tables import AuditEntry, Call, Caller, CallTurn, Memory
from tests.admin.conftest import PASSWORD
from tests.admin.helpers import insert_calls

JSON = {"Accept": "application/json"}
HOURS = b"# Opening hours\n\nWe are open on Saturdays from 10:00 to 12:00. Parking is behind the building.\n"


@pytest.fixture
def admin_env() -> dict[str, str]:
    return {"ADMIN_PASSWORD": PASSWORD, "PHONE_AGENT_MAX_UPLOAD_MB": "1"}


def run(client: TestClient, coro_fn) -> object:  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn(client.app.state.runtime))


async def count(runtime, table) -> int:  # type: ignore[no-untyped-def]
    async with runtime.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar_one())


def test_upload_find_and_delete_a_document(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    response = client.post(
        "/admin/knowledge/documents",
        files={"file": ("hours.md", HOURS, "text/markdown")},
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/admin?saved=knowledge#knowledge"
    docs = client.get("/admin/api/knowledge/documents").json()["documents"]
    assert [(d["title"], d["source_name"], d["chunks"]) for d in docs] == [("Opening hours", "hours.md", 1)]
    hits = client.get("/admin/api/knowledge/search", params={"q": "open on Saturday"}).json()["hits"]
    assert hits and "Saturdays from 10:00" in hits[0]["text"]
    page = client.get("/admin", params={"kq": "parking"}).text
    assert "Opening hours" in page and "Parking is behind the building." in page
    gone = client.post(
        f"/admin/knowledge/documents/{docs[0]['id']}/delete", data={"csrf_token": csrf}, headers=JSON
    )
    assert gone.json() == {"ok": True}
    assert client.get("/admin/api/knowledge/documents").json()["documents"] == []
    actions = [(a.action, a.target) for a in run(client, _audit)]
    assert ("knowledge.add", "Opening hours") in actions and (
        "knowledge.delete",
        f"document {docs[0]['id']}",
    ) in actions


async def _audit(runtime) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    async with runtime.sessions() as s:
        return list((await s.execute(select(AuditEntry))).scalars())


def test_oversize_and_unsupported_uploads_are_refused(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    big = b"x" * (1024 * 1024 + 10)
    for headers in ({"X-CSRF-Token": csrf}, {}):  # token in the header, or only in the (huge) form
        response = client.post(
            "/admin/knowledge/documents",
            files={"file": ("big.txt", big, "text/plain")},
            data={} if headers else {"csrf_token": csrf},
            headers={**headers, **JSON},
        )
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "The file is larger than the upload limit of 1 MB (setting max_upload_mb)."
        )
    odd = client.post(
        "/admin/knowledge/documents",
        files={"file": ("x.exe", b"MZ", "application/octet-stream")},
        headers={"X-CSRF-Token": csrf, **JSON},
    )
    assert odd.status_code == 422 and "unsupported document type" in odd.json()["error"]["message"]
    page = client.post(
        "/admin/knowledge/documents",
        files={"file": ("x.exe", b"MZ", "application/octet-stream")},
        data={"csrf_token": csrf},
    )
    assert page.status_code == 422 and "x.exe: unsupported document type" in page.text  # the page, again
    assert client.get("/admin/api/knowledge/documents").json()["documents"] == []


async def _seed_caller(runtime) -> None:  # type: ignore[no-untyped-def]
    await insert_calls(runtime)
    store = runtime.current.memory
    await store.store_memories(
        "+15551230001",
        [
            MemoryItem(content="Prefers morning appointments", key="preferred_time"),
            MemoryItem(content="Has a dog called Rex"),
        ],
        name="Maria Lopez",
    )


def test_callers_memories_edit_delete_and_forget_caller(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    run(client, _seed_caller)
    found = client.get("/admin/api/callers", params={"q": "maria"}).json()["callers"]
    assert [(c["phone"], c["name"], c["memories"]) for c in found] == [("+15551230001", "Maria Lopez", 2)]
    assert (
        client.get("/admin/api/callers", params={"q": "555 123"}).json()["callers"][0]["phone"]
        == "+15551230001"
    )
    assert client.get("/admin/api/callers", params={"q": "nobody"}).json()["callers"] == []
    caller = client.get("/admin/api/callers/+15551230001").json()
    assert [c["call_sid"] for c in caller["calls"]] == ["CA-done"]
    by_text = {m["content"]: m["id"] for m in caller["memories"]}
    page = client.get("/admin/callers/+15551230001").text
    assert "Prefers morning appointments" in page and "Delete all data of this caller" in page

    edit = client.post(
        f"/admin/callers/+15551230001/memories/{by_text['Prefers morning appointments']}",
        data={"csrf_token": csrf, "content": "Prefers afternoon appointments"},
        follow_redirects=False,
    )
    assert edit.status_code == 303
    client.post(
        f"/admin/callers/+15551230001/memories/{by_text['Has a dog called Rex']}/delete",
        data={"csrf_token": csrf},
    )
    memories = client.get("/admin/api/callers/+15551230001").json()["memories"]
    assert [(m["content"], m["key"]) for m in memories] == [
        ("Prefers afternoon appointments", "preferred_time")
    ]

    async def retrieve(runtime):  # type: ignore[no-untyped-def]
        return await runtime.current.memory.retrieve("+15551230001", "afternoon")

    assert [m.content for m in run(client, retrieve)] == ["Prefers afternoon appointments"]  # re-indexed
    assert (
        client.post("/admin/callers/+15559999999/memories/1/delete", data={"csrf_token": csrf}).status_code
        == 404
    )

    forget = client.post(
        "/admin/callers/+15551230001/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert forget.status_code == 303
    for table in (Caller, Memory, CallTurn):
        assert run(client, lambda rt, t=table: count(rt, t)) == 0
    assert run(client, lambda rt: count(rt, Call)) == 2  # only the other callers' calls are left
    assert client.get("/admin/api/callers/+15551230001").status_code == 404
    audit = [(a.action, a.target) for a in run(client, _audit)]
    assert ("caller.delete", "caller …0001") in audit and (
        "memory.edit",
        f"caller …0001 memory {by_text['Prefers morning appointments']}",
    ) in audit
    assert not any("+15551230001" in (a.target or "") for a in run(client, _audit))


def test_page_still_renders_when_the_memory_service_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from phone_agent.app import create_app
    from tests.admin.conftest import log_in
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path,
        ADMIN_PASSWORD=PASSWORD,
        PHONE_AGENT_MEMORY_BACKEND="http",
        PHONE_AGENT_MEMORY_URL="http://127.0.0.1:9",
        PHONE_AGENT_MEMORY_TIMEOUT_SECONDS="0.5",
    )
    with TestClient(create_app(settings)) as client:
        log_in(client)
        page = client.get("/admin")
    assert page.status_code == 200
    assert "The knowledge base cannot be reached now" in page.text
    assert "DOWN" in page.text  # the health table says so too
