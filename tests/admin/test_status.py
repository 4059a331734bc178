"""GET /admin-status: JSON snapshot with counts, endpoints, config sources; never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from phone_agent.admin.snapshot import build_snapshot
from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call, CallTurn
from tests.admin.conftest import PASSWORD, log_in
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
    load = body["load"]  # the answering process takes calls: its calls and event loop
    assert load["calls"] == 0 and load["reserved"] == 0 and load["full"] is None
    assert load["max_calls"] == settings.max_calls_per_worker
    assert 0 <= load["event_loop_lag_ms"] <= load["worst_lag_last_minute_ms"] + 0.1
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


def test_status_needs_token_or_login_even_from_loopback(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD))
    with TestClient(app, client=("127.0.0.1", 4000)) as client:
        assert client.get("/admin-status").status_code == 401
        log_in(client)
        assert client.get("/admin-status").status_code == 200


async def test_snapshot_health_and_latency_percentiles(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as s:
        call = Call(call_sid="CA-lat", from_number="+15550001111", status="in-progress")
        for i, total in enumerate([400, 500, 600, 700, 2000]):
            call.turns.append(
                CallTurn(
                    seq=i,
                    role="agent",
                    text="x",
                    marks={"caller_stopped": 10_000 * i, "first_audio_sent": 10_000 * i + total},
                )
            )
        call.turns.append(CallTurn(seq=9, role="caller", text="untimed", marks={}))
        s.add(call)
    snapshot = await build_snapshot(runtime, runtime.current)
    assert snapshot["latency"] == {
        "turns": 5,
        "voice_to_voice_p50_ms": 600.0,
        "voice_to_voice_p95_ms": 2000.0,
    }
    assert snapshot["counts"]["active_calls"] == 1 and snapshot["counts"]["calls_today"] == 1
    health = snapshot["health"]
    assert health["database"]["ok"] and health["memory"] == {"ok": True, "detail": "in-process (local)"}
    assert "redis" not in health and health["providers"]["elevenlabs"]["configured"] is False
    assert snapshot["tts"]["stability"] == 0.5


async def test_snapshot_reports_redis_and_a_down_memory_service(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        REDIS_URL="redis://127.0.0.1:6379/0",
        PHONE_AGENT_MEMORY_BACKEND="http",
        PHONE_AGENT_MEMORY_URL="http://127.0.0.1:9",
    )
    rt = Runtime.create(settings, "all")
    await upgrade(rt.engine)
    try:
        health = (await build_snapshot(rt, rt.current))["health"]
    finally:
        await rt.close()
    assert health["redis"] == {"ok": True, "detail": "ping ok"}
    assert health["memory"]["ok"] is False and "unreachable" in health["memory"]["detail"]


def load_row(page: str) -> str:
    return page.split('<tr id="load">', 1)[1].split("</tr>", 1)[0]


def test_the_admin_page_shows_this_process_s_calls_and_event_loop(admin: tuple[TestClient, str]) -> None:
    client, _csrf = admin
    load = client.app.state.runtime.load
    row = load_row(client.get("/admin").text)
    assert ">OK<" in row and f"0 of {load.max_calls} calls in this process" in row
    assert "worst in the last minute" in row and "New calls are turned away" not in row

    load.record_lag(420.0)  # a stall: the worst of the minute
    with load.call("CA-a"), load.call("CA-b"):
        load.max_calls = 2
        row = load_row(client.get("/admin").text)
    assert ">FULL<" in row and "2 of 2 calls in this process" in row
    assert "worst in the last minute 420 ms" in row
    assert "New calls are turned away: at capacity (2 of 2 calls)" in row
