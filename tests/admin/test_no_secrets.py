"""No page, admin API answer or /admin-status snapshot contains a configured secret."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from phone_agent.config import is_secret, setting_names
from tests.admin.conftest import PASSWORD
from tests.admin.helpers import insert_calls

SECRETS = {
    "OPENAI_API_KEY": "sk-proj-SECRETopenai0123456789",
    "ELEVENLABS_API_KEY": "xi-SECRETeleven0123456789",
    "DEEPGRAM_API_KEY": "dg-SECRETdeepgram0123456789",
    "TWILIO_AUTH_TOKEN": "SECRETtwilioauthtoken0123456789",
    "PHONE_AGENT_LLM_SECONDARY_API_KEY": "sk-SECRETsecondary0123456789",
    "PHONE_AGENT_STT_FALLBACK_API_KEY": "sk-SECRETsttfallback0123456789",
    "PHONE_AGENT_MEMORY_SERVICE_TOKEN": "SECRETmemorytoken0123456789",
    "PHONE_AGENT_ADMIN_STATUS_TOKEN": "SECRETstatustoken0123456789",
    "PHONE_AGENT_API_KEY": "SECRETapikey0123456789",
    "PHONE_AGENT_SESSION_SECRET": "SECRETsessionsecret0123456789",
    "PHONE_AGENT_SMTP_PASSWORD": "SECRETsmtppassword0123456789",
}


@pytest.fixture
def admin_env() -> dict[str, str]:
    return {"ADMIN_PASSWORD": PASSWORD, **SECRETS, "PHONE_AGENT_ELEVENLABS_BASE_URL": "http://127.0.0.1:9"}


def test_every_secret_setting_is_configured_here() -> None:
    secret_settings = [n for n in setting_names() if is_secret(n)]
    assert len(secret_settings) == len(SECRETS) + 1  # + admin_password


def test_pages_and_status_contain_no_secret(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    asyncio.run(insert_calls(client.app.state.runtime))
    client.post("/admin/settings/voice", data={"csrf_token": csrf, "tts_stability": "0.7"})
    client.post("/admin/settings/voice", data={"csrf_token": csrf, "tts_stability": "7"})  # error page
    client.get("/admin/api/voices")  # ElevenLabs unreachable: the error is recorded for the health table
    token = SECRETS["PHONE_AGENT_ADMIN_STATUS_TOKEN"]
    answers = {
        path: client.get(path)
        for path in (
            "/admin",
            "/admin.html",
            "/admin/calls/CA-done",
            "/admin/api/calls",
            "/admin/api/calls/CA-done",
            "/admin/api/voices",
            "/admin-status",
        )
    }
    answers["error page"] = client.post("/admin/settings/voice", data={"csrf_token": csrf, "tts_speed": "9"})
    answers["status by token"] = TestClient(client.app).get(
        "/admin-status", headers={"Authorization": f"Bearer {token}"}
    )
    answers["login page"] = TestClient(client.app).get("/admin/login")
    assert answers["/admin"].status_code == answers["/admin.html"].status_code == 200
    assert answers["status by token"].status_code == 200
    assert "sk-…6789" in answers["/admin"].text  # shown masked
    config = {row["name"]: row["value"] for row in answers["/admin-status"].json()["config"]}
    assert config["admin_password"] == config["session_secret"] == config["admin_status_token"] == "…****"
    for name, response in answers.items():
        for secret in [*SECRETS.values(), PASSWORD]:
            assert secret not in response.text, (name, secret)
