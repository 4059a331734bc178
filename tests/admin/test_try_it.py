""" "Try it": the owner's test chat reaches the brain with the saved persona; nothing is stored as a call."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from phone_agent.storage.tables import Call
from tests.admin.conftest import PASSWORD
from tests.fakes.openai import FakeOpenAI


@pytest.fixture
def admin_env(fake_openai: FakeOpenAI) -> dict[str, str]:
    return {
        "ADMIN_PASSWORD": PASSWORD,
        "OPENAI_API_KEY": fake_openai.api_key,
        "PHONE_AGENT_LLM_BASE_URL": fake_openai.url + "/v1",
        "PHONE_AGENT_OPENAI_BASE_URL": fake_openai.url + "/v1",
        "PHONE_AGENT_EMBEDDINGS_ENABLED": "false",
    }


def test_try_it_uses_the_saved_persona(admin: tuple[TestClient, str], fake_openai: FakeOpenAI) -> None:
    client, csrf = admin
    saved = client.post(
        "/admin/settings/personality",
        data={"csrf_token": csrf, "business_name": "Lopez Dental", "agent_name": "Robin"},
        headers={"Accept": "application/json"},
    )
    assert saved.json()["changed"] == ["agent_name", "business_name"]
    fake_openai.script("We are open until five today.")
    messages = [{"role": "user", "content": "Are you open today?"}]
    answer = client.post("/admin/api/try-it", json={"messages": messages}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    assert answer.json()["reply"] == "We are open until five today."
    sent = fake_openai.chat_requests[-1]["messages"]
    system = " ".join(m["content"] for m in sent if m["role"] == "system")
    assert "You are Robin, the phone receptionist of Lopez Dental." in system
    assert sent[-1] == {"role": "user", "content": "Are you open today?"}

    fake_openai.script("Yes, Saturdays ten to noon.")
    messages += [
        {"role": "assistant", "content": "We are open until five today."},
        {"role": "user", "content": "And Saturday?"},
    ]
    second = client.post("/admin/api/try-it", json={"messages": messages}, headers={"X-CSRF-Token": csrf})
    assert second.json()["reply"] == "Yes, Saturdays ten to noon."
    history = [m for m in fake_openai.chat_requests[-1]["messages"] if m["role"] != "system"]
    assert [m["content"] for m in history][-3:] == [
        "Are you open today?",
        "We are open until five today.",
        "And Saturday?",
    ]

    async def calls() -> int:
        async with client.app.state.runtime.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(Call))).scalar_one())

    assert asyncio.run(calls()) == 0  # test chats are not stored as calls
    assert client.get("/admin-status").json()["health"]["providers"]["llm"]["ok"] is True
    fake_openai.fail_next(5, status=503)
    canned = client.post("/admin/api/try-it", json={"messages": messages[:1]}, headers={"X-CSRF-Token": csrf})
    assert canned.status_code == 200 and canned.json()["provider"] == "canned"
    llm = client.get("/admin-status").json()["health"]["providers"]["llm"]
    assert llm["ok"] is False and llm["last_error"] == "no LLM endpoint answered"
    assert client.post("/admin/api/try-it", json={"messages": messages}).status_code == 403  # no CSRF
    too_long = [{"role": "user", "content": "x" * 2001}]
    assert (
        client.post(
            "/admin/api/try-it", json={"messages": too_long}, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 422
    )
