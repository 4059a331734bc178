"""Voice, personality and LLM forms: validated by Settings, stored as overrides, audited, live at once."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phone_agent.brain.persona import greeting_for
from phone_agent.storage.tables import AuditEntry, ConfigOverride
from tests.fakes.elevenlabs import FakeElevenLabs

JSON = {"Accept": "application/json"}


def rows(client: TestClient, table: type) -> list:
    async def fetch() -> list:
        async with client.app.state.runtime.sessions() as s:
            return list((await s.execute(select(table))).scalars())

    return asyncio.run(fetch())


def test_voice_and_greeting_saved_audited_and_used_by_the_next_call(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    runtime = client.app.state.runtime
    before = runtime.current.settings
    voice = client.post(
        "/admin/settings/voice",
        data={
            "csrf_token": csrf,
            "tts_stability": "0.8",
            "tts_speed": "1.0",
            "elevenlabs_voice_id": before.elevenlabs_voice_id,
        },
        follow_redirects=False,
    )
    assert voice.status_code == 303 and voice.headers["location"] == "/admin?saved=voice#voice"
    personality = client.post(
        "/admin/settings/personality",
        data={
            "csrf_token": csrf,
            "greeting": "Hi, {business_name} here, {agent_name} speaking.",
            "handoff_number": "",
        },
        headers=JSON,
    )
    assert personality.json()["changed"] == ["greeting"]  # unchanged values are not pinned as overrides
    after = runtime.current.settings
    assert after is not before and before.tts_stability == 0.5  # a running call keeps its Settings
    assert after.tts_stability == 0.8 and after.source_of("tts_stability") == "admin"
    assert greeting_for(after) == "Hi, our office here, Ava speaking."
    assert {r.key: r.value for r in rows(client, ConfigOverride)} == {
        "tts_stability": 0.8,
        "greeting": "Hi, {business_name} here, {agent_name} speaking.",
    }
    audit = [
        (a.actor, a.action, a.target, a.old_value, a.new_value)
        for a in rows(client, AuditEntry)
        if a.action == "config.set"
    ]
    assert audit == [
        ("admin@192.0.2.10", "config.set", "tts_stability", "0.5", "0.8"),
        (
            "admin@192.0.2.10",
            "config.set",
            "greeting",
            before.greeting,
            "Hi, {business_name} here, {agent_name} speaking.",
        ),
    ]
    page = client.get("/admin").text
    assert "Saved" not in page and 'value="0.8"' in page and "tts_stability" in page


def test_bad_values_show_on_the_form_and_nothing_is_saved(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    form = {"csrf_token": csrf, "tts_stability": "1.5", "tts_speed": "0.9", "tts_style": "lots"}
    response = client.post("/admin/settings/voice", data=form)
    assert response.status_code == 422
    assert "Nothing was saved" in response.text and "less than or equal to 1" in response.text
    assert 'value="1.5"' in response.text  # what the owner typed stays in the form
    api = client.post("/admin/settings/voice", data=form, headers=JSON).json()
    assert set(api["errors"]) == {"tts_stability", "tts_style"}
    assert client.app.state.runtime.current.settings.tts_speed == 1.0
    assert rows(client, ConfigOverride) == []
    persona = client.post(
        "/admin/settings/personality",
        data={"csrf_token": csrf, "greeting": "Hi {name}!", "business_hours": "whenever"},
        headers=JSON,
    ).json()["errors"]
    assert "unknown placeholder {name}" in persona["greeting"]
    assert persona["business_hours"].startswith("Value error, cannot read 'whenever'.")
    brace = client.post(
        "/admin/settings/personality", data={"csrf_token": csrf, "greeting": "Hi {"}, headers=JSON
    ).json()["errors"]
    assert "literal brace" in brace["greeting"]
    phone = client.post(
        "/admin/settings/personality",
        data={"csrf_token": csrf, "handoff_number": "call Bob"},
        headers=JSON,
    )
    assert phone.status_code == 422 and "+15551234567" in phone.json()["errors"]["handoff_number"]
    ok = client.post(
        "/admin/settings/personality",
        data={"csrf_token": csrf, "handoff_number": "+1 (555) 765-4321"},
        headers=JSON,
    )
    assert ok.json()["values"]["handoff_number"] == "+15557654321"
    bad_url = client.post(
        "/admin/settings/llm", data={"csrf_token": csrf, "llm_base_url": "ftp://x"}, headers=JSON
    )
    assert bad_url.status_code == 422 and "http" in bad_url.json()["errors"]["llm_base_url"]


def test_llm_backend_edit_and_reset(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    runtime = client.app.state.runtime
    form = {
        "csrf_token": csrf,
        "llm_provider": "openai-compatible",
        "llm_model": "llama-3.1-8b",
        "llm_base_url": "http://127.0.0.1:8080/v1/",
    }
    body = client.post("/admin/settings/llm", data=form, headers=JSON).json()
    assert body["values"] == {
        "llm_provider": "openai-compatible",
        "llm_model": "llama-3.1-8b",
        "llm_base_url": "http://127.0.0.1:8080/v1",
    }
    status = client.get("/admin-status").json()
    assert status["llm"]["model"] == "llama-3.1-8b" and status["config_sources"]["llm_model"] == "admin"
    reset = client.post("/admin/settings/llm/reset/llm_model", data={"csrf_token": csrf}, headers=JSON)
    assert reset.json() == {"ok": True, "name": "llm_model", "value": "gpt-4o-mini", "source": "default"}
    settings = runtime.current.settings
    assert settings.llm_model == "gpt-4o-mini" and settings.llm_provider == "openai-compatible"
    assert any(a.action == "config.reset" and a.target == "llm_model" for a in rows(client, AuditEntry))
    assert (
        client.post("/admin/settings/llm/reset/openai_api_key", data={"csrf_token": csrf}).status_code == 404
    )


@pytest.fixture
def eleven() -> FakeElevenLabs:
    with FakeElevenLabs() as fake:
        yield fake


@pytest.fixture
def admin_env(eleven: FakeElevenLabs) -> dict[str, str]:
    return {
        "ADMIN_PASSWORD": "correct horse battery",
        "ELEVENLABS_API_KEY": eleven.api_key,
        "PHONE_AGENT_ELEVENLABS_BASE_URL": eleven.url,
    }


def test_voice_list_and_sample_from_elevenlabs(admin: tuple[TestClient, str], eleven: FakeElevenLabs) -> None:
    client, csrf = admin
    voices = client.get("/admin/api/voices").json()
    assert {v["voice_id"]: v["name"] for v in voices["voices"]} == {
        "21m00Tcm4TlvDq8ikWAM": "Rachel",
        "EXAVITQu4vr4xnSDxMaL": "Sarah",
    }
    sample = client.post(
        "/admin/api/voice-sample",
        json={"text": "Hello there", "elevenlabs_voice_id": "EXAVITQu4vr4xnSDxMaL", "tts_stability": 0.9},
        headers={"X-CSRF-Token": csrf},
    )
    assert sample.status_code == 200 and sample.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(sample.content)) as wav:
        assert wav.getframerate() == 16000 and wav.getnframes() > 1600  # a non-empty clip
    sent = eleven.http_requests[-1]
    assert sent["voice_id"] == "EXAVITQu4vr4xnSDxMaL" and sent["query"]["output_format"] == "pcm_16000"
    assert sent["json"]["voice_settings"] == {
        "stability": 0.9,
        "similarity_boost": 0.75,
        "style": 0.0,
        "speed": 1.0,
    }
    assert sent["json"]["model_id"] == "eleven_flash_v2_5"
    assert client.app.state.runtime.current.settings.tts_stability == 0.5  # a sample saves nothing
    health = client.get("/admin-status").json()["health"]["providers"]["elevenlabs"]
    assert health["ok"] is True and health["configured"] is True


def test_elevenlabs_down_gives_a_clear_message(admin: tuple[TestClient, str], eleven: FakeElevenLabs) -> None:
    client, csrf = admin
    eleven.fail_next(status=503)
    down = client.post("/admin/api/voice-sample", json={}, headers={"X-CSRF-Token": csrf})
    assert down.status_code == 502
    assert down.json()["error"]["message"] == (
        "elevenlabs: not available right now (HTTP 503: Injected failure 503). "
        "Calls use the fallback voice until it is back."
    )
    eleven.api_key = "a-rotated-key"  # the configured key no longer works
    refused = client.get("/admin/api/voices")
    assert refused.json()["error"]["message"] == (
        "elevenlabs: the API key was refused (HTTP 401); check ELEVENLABS_API_KEY."
    )
    eleven.stop()
    gone = client.get("/admin/api/voices")
    assert gone.status_code == 502 and "(unreachable (ConnectError))" in gone.json()["error"]["message"]
    bad = client.post(
        "/admin/api/voice-sample", json={"elevenlabs_voice_id": "../v1/user"}, headers={"X-CSRF-Token": csrf}
    )
    assert bad.status_code == 422
    status = client.get("/admin-status").json()["health"]["providers"]["elevenlabs"]
    assert status["ok"] is False and "unreachable" in status["last_error"]
