"""GET /admin-status: JSON snapshot with counts, endpoints, config sources; never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.conftest import make_settings

SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai-0123456789",
    "ELEVENLABS_API_KEY": "el-test-eleven-0123456789",
    "TWILIO_AUTH_TOKEN": "tw-test-token-0123456789",
    "PHONE_AGENT_ADMIN_STATUS_TOKEN": "status-token-0123456789",
}


def test_snapshot_contents_and_no_secrets(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **SECRETS, TWILIO_ACCOUNT_SID="AC123", ELEVENLABS_VOICE_ID="voice-x")
    with TestClient(create_app(settings)) as client:
        response = client.get(
            "/admin-status", headers={"Authorization": f"Bearer {SECRETS['PHONE_AGENT_ADMIN_STATUS_TOKEN']}"}
        )
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "all" and body["database"]["ok"] and body["database"]["migrations_current"]
    assert body["counts"] == {"callers": 0, "calls": 0, "memories": 0, "calls_today": 0, "active_calls": 0}
    assert body["llm"]["model"] == "gpt-4o-mini" and body["llm"]["base_url"] == "https://api.openai.com/v1"
    assert body["tts"]["voice_id"] == "voice-x"
    assert body["providers_configured"] == {
        "openai": True,
        "elevenlabs": True,
        "deepgram": False,
        "twilio": True,
        "llm_secondary": False,
    }
    config = {row["name"]: row for row in body["config"]}
    assert config["elevenlabs_voice_id"]["source"] == "env"
    assert config["llm_model"]["source"] == "default"
    assert config["openai_api_key"]["value"] == "sk-…6789"
    text = json.dumps(body)
    for secret in SECRETS.values():
        assert secret not in text


def test_status_requires_token_when_configured(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PHONE_AGENT_ADMIN_STATUS_TOKEN="right-token-123456")
    with TestClient(create_app(settings), client=("127.0.0.1", 4000)) as client:
        assert client.get("/admin-status").status_code == 401
        assert client.get("/admin-status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/admin-status?token=right-token-123456").status_code == 200


def test_status_without_token_only_from_loopback(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 4000)) as client:
        assert client.get("/admin-status").status_code == 200
    with TestClient(app, client=("203.0.113.9", 4000)) as client:
        assert client.get("/admin-status").status_code == 401
