"""Finding 11 (part): hostile numbers and nesting in request bodies get a 4xx, never a 500.

Before: ``/memory/purge`` with a huge ``days`` raised OverflowError, a 200k-deep JSON array on
``/v1/*`` or the memory API raised RecursionError, and ids or sampling values beyond what the
database or the LLM accept went through to them — all answered 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.conftest import make_settings

TOKEN = "sec13-shared-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEEP = b"[" * 200_000 + b"]" * 200_000
DEEP_IN_OBJECT = b'{"phone": "+15551234567", "profile": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path, PHONE_AGENT_API_KEY=TOKEN, PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN, OPENAI_API_KEY=""
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("days", [10**9, 2**63, 10**30])
def test_purge_with_a_huge_days_is_422(client: TestClient, days: int) -> None:
    answer = client.post("/memory/purge", json={"days": days}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert client.post("/memory/purge", json={"days": 30}, headers=AUTH).json() == {"deleted": 0}


@pytest.mark.parametrize(
    "path",
    ["/v1/chat", "/v1/chat/completions", "/memory/store", "/memory/retrieve", "/knowledge/search"],
)
@pytest.mark.parametrize("body", [DEEP, DEEP_IN_OBJECT], ids=["array", "object"])
def test_deep_json_is_400(client: TestClient, path: str, body: bytes) -> None:
    answer = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert answer.status_code == 400, answer.text[:300]
    assert "nested more than 64 levels" in answer.json()["error"]["message"]


def test_deep_json_without_credentials_is_still_refused_cheaply(client: TestClient) -> None:
    answer = client.post("/v1/chat", content=DEEP, headers={"content-type": "application/json"})
    assert answer.status_code in (400, 401)


def test_a_reasonably_nested_body_is_not_refused(client: TestClient) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    nested: dict = {"type": "string"}
    for _ in range(20):
        nested = {"type": "object", "properties": {"x": nested}}
    tool["function"]["parameters"] = nested
    body = {"model": "phone-agent", "messages": [{"role": "user", "content": "hi"}], "tools": [tool], "n": 2}
    answer = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert answer.status_code == 422  # n=2 is out of range: validated, not refused for depth
    assert answer.json()["error"]["param"] == "n"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 1e308),
        ("temperature", -1),
        ("top_p", 7),
        ("max_tokens", 10**30),
        ("max_tokens", 0),
        ("presence_penalty", 99),
        ("frequency_penalty", -99),
        ("seed", 2**70),
    ],
)
def test_out_of_range_sampling_values_are_422_in_openai_shape(
    client: TestClient, field: str, value: float
) -> None:
    body = {"model": "phone-agent", "messages": [{"role": "user", "content": "hi"}], field: value}
    answer = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == field
    assert answer.json()["error"]["code"] == "invalid_value"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", f"/knowledge/documents/{10**20}", None),
        ("DELETE", f"/knowledge/documents/{2**63}", None),
        ("POST", f"/knowledge/reindex?document_id={10**20}", None),
        ("GET", f"/memory/callers/%2B15551234567?limit={10**20}", None),
        ("POST", "/memory/retrieve", {"query": "x", "limit": 10**20}),
        ("POST", "/knowledge/search", {"query": "x", "limit": -(10**20)}),
    ],
)
def test_out_of_range_ids_and_limits_are_422(
    client: TestClient, method: str, path: str, body: dict | None
) -> None:
    answer = client.request(method, path, json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text


def test_unauthenticated_bad_body_answers_401_first(client: TestClient) -> None:
    answer = client.post("/v1/chat", json={"caller": 5}, headers={"Authorization": "Bearer wrong-key-000000"})
    assert answer.status_code == 401
    answer = client.post("/v1/chat", content=b"{oops", headers={"content-type": "application/json"})
    assert answer.status_code == 401
