""" "Test connection" against the provider fakes: a key each provider accepts is "ok", a key it refuses
(or an injected 401) is "key_rejected" with the provider's message and no secret, a 500 is "error", a
closed port is "unreachable"; unsaved form values are what is tested and nothing is saved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.admin.conftest import PASSWORD, log_in
from tests.conftest import make_settings
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import FakeTwilioREST

WRONG = "sk-wrong-0123456789abcdefWRONG"


@pytest.fixture
def fakes(
    fake_openai: FakeOpenAI,
    fake_elevenlabs: FakeElevenLabs,
    fake_deepgram: FakeDeepgram,
    fake_twilio: FakeTwilioREST,
) -> dict[str, Any]:
    return {
        "openai": fake_openai,
        "elevenlabs": fake_elevenlabs,
        "deepgram": fake_deepgram,
        "twilio": fake_twilio,
    }


@pytest.fixture
def page(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[tuple[TestClient, str]]:
    env = {
        "ADMIN_PASSWORD": PASSWORD,
        "OPENAI_API_KEY": fakes["openai"].api_key,
        "PHONE_AGENT_OPENAI_BASE_URL": fakes["openai"].url + "/v1",
        "PHONE_AGENT_LLM_BASE_URL": fakes["openai"].url + "/v1",
        "ELEVENLABS_API_KEY": fakes["elevenlabs"].api_key,
        "PHONE_AGENT_ELEVENLABS_BASE_URL": fakes["elevenlabs"].url,
        "DEEPGRAM_API_KEY": fakes["deepgram"].api_key,
        "PHONE_AGENT_DEEPGRAM_BASE_URL": fakes["deepgram"].ws_url,
        "TWILIO_ACCOUNT_SID": fakes["twilio"].account_sid,
        "TWILIO_AUTH_TOKEN": fakes["twilio"].auth_token,
        "PHONE_AGENT_TWILIO_API_BASE_URL": fakes["twilio"].url,
    }
    with TestClient(create_app(make_settings(tmp_path, **env)), client=("192.0.2.10", 5000)) as client:
        yield client, log_in(client)


def try_provider(client: TestClient, csrf: str, provider: str, **values: str) -> dict[str, Any]:
    response = client.post(
        "/admin/api/test-connection",
        json={"provider": provider, "values": values},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


KEYS = {
    "openai": "openai_api_key",
    "elevenlabs": "elevenlabs_api_key",
    "deepgram": "deepgram_api_key",
    "twilio": "twilio_auth_token",
}


@pytest.mark.parametrize("provider", ["openai", "elevenlabs", "deepgram", "twilio"])
def test_saved_keys_pass_and_a_typed_wrong_key_is_rejected(
    page: tuple[TestClient, str], fakes: dict[str, Any], provider: str
) -> None:
    client, csrf = page
    ok = try_provider(client, csrf, provider)
    assert (ok["ok"], ok["status"]) == (True, "ok"), ok
    wrong = try_provider(client, csrf, provider, **{KEYS[provider]: WRONG})
    assert (wrong["ok"], wrong["status"]) == (False, "key_rejected"), wrong
    assert wrong["message"].startswith(
        ("Key rejected (HTTP 401", "Account SID / auth token rejected (HTTP 401")
    )
    assert WRONG not in str(wrong)
    fake = fakes[provider]
    assert fake.requests[-1].method == "GET"  # one cheap read, nothing changed at the provider
    # nothing was saved: the saved key still passes
    assert try_provider(client, csrf, provider)["status"] == "ok"
    assert client.app.state.runtime.current.settings.source_of(KEYS[provider]) == "env"


def test_provider_faults_are_shown_as_the_provider_said_them(
    page: tuple[TestClient, str], fakes: dict[str, Any]
) -> None:
    client, csrf = page
    fakes["openai"].fail_next(status=401)
    rejected = try_provider(client, csrf, "openai")
    assert rejected == {
        "provider": "openai",
        "ok": False,
        "status": "key_rejected",
        "message": "Key rejected (HTTP 401: Request failed with status 401).",  # what the provider said
    }
    assert fakes["openai"].api_key not in rejected["message"]
    fakes["elevenlabs"].fail_next(status=500)
    failed = try_provider(client, csrf, "elevenlabs")
    assert failed["status"] == "error" and failed["message"].startswith("ElevenLabs answered HTTP 500")
    unreachable = try_provider(client, csrf, "deepgram", deepgram_base_url="http://127.0.0.1:9")
    assert unreachable["status"] == "unreachable", unreachable
    llm = try_provider(client, csrf, "llm", llm_model="no-such-model")
    assert llm["status"] == "error" and "no-such-model" in llm["message"]
    assert try_provider(client, csrf, "llm")["status"] == "ok"


def test_a_masked_key_is_the_saved_one_and_bad_values_are_refused(page: tuple[TestClient, str]) -> None:
    client, csrf = page
    settings = client.app.state.runtime.current.settings
    masked = settings.shown("openai_api_key")
    assert try_provider(client, csrf, "openai", openai_api_key=masked)["status"] == "ok"
    invalid = try_provider(client, csrf, "openai", openai_base_url="not a url at all")
    assert invalid["status"] == "invalid" and not invalid["ok"]
    refused = client.post("/admin/api/test-connection", json={"provider": "openai", "values": {}})
    assert refused.status_code == 403  # no CSRF token


def test_missing_keys_open_the_page_on_the_setup_checklist(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    env = {"ADMIN_PASSWORD": PASSWORD, "PHONE_AGENT_OPENAI_BASE_URL": fake_openai.url + "/v1"}
    with TestClient(create_app(make_settings(tmp_path, **env))) as client:
        csrf = log_in(client)
        page = client.get("/admin").text
        setup = page.index('id="setup"')
        assert setup < page.index('id="call-agent"') < page.index('id="voice"')  # the page opens on it
        for section in ("openai", "elevenlabs", "twilio"):
            assert f'id="setup-{section}"' in page
        assert 'id="setup-deepgram"' not in page  # Deepgram is not used with these settings
        assert try_provider(client, csrf, "openai")["status"] == "not_configured"
        assert try_provider(client, csrf, "openai", openai_api_key=fake_openai.api_key)["status"] == "ok"
        saved = client.post(
            "/admin/settings/openai",
            data={"csrf_token": csrf, "openai_api_key": fake_openai.api_key},
            headers={"Accept": "application/json"},
        )
        assert saved.status_code == 200 and saved.json()["changed"] == ["openai_api_key"], saved.text
        page = client.get("/admin").text
        assert 'id="setup-openai"' not in page and 'id="setup-elevenlabs"' in page
        assert fake_openai.api_key not in page and fake_openai.api_key not in client.get("/admin-status").text
        assert try_provider(client, csrf, "openai")["status"] == "ok"  # the saved key
