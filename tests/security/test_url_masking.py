"""Finding 4: credentials inside URL settings are masked wherever a value is shown.

DATABASE_URL / REDIS_URL passwords and key-like query values of ``*_url`` settings appeared in clear
in ``config show --json``, ``/admin-status`` (readable with only the monitoring token) and the admin
page; here each of those, the admin settings form, the logs and the doctor's report are checked.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from loguru import logger

from phone_agent import config
from phone_agent.app import create_app
from phone_agent.ops.doctor import run_doctor
from phone_agent.ops.logging import setup_logging
from tests.admin.conftest import PASSWORD, log_in
from tests.conftest import _reset_pg, make_settings
from tests.test_cli import run_cli

DB_PASSWORD = "Pg-Passw0rd-db-9911"
REDIS_PASSWORD = "R3dis-Passw0rd-7733"
LLM_USER_PASSWORD = "llm-userinfo-Secret-4455"
LLM_QUERY_KEY = "sk-query-key-Secret-8822"
MEMORY_PASSWORD = "mem-Passw0rd-6611"
REALTIME_TOKEN = "rt-token-Secret-1234"
URL_SECRETS = (DB_PASSWORD, REDIS_PASSWORD, LLM_USER_PASSWORD, LLM_QUERY_KEY, MEMORY_PASSWORD, REALTIME_TOKEN)
STATUS_TOKEN = "status-token-for-monitoring-0042"


def url_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
        "PHONE_AGENT_LLM_SECONDARY_BASE_URL": (
            f"https://proxy-user:{LLM_USER_PASSWORD}@llm.example.com/v1?api_key={LLM_QUERY_KEY}&region=eu"
        ),
        "PHONE_AGENT_MEMORY_URL": f"http://memory:{MEMORY_PASSWORD}@127.0.0.1:9",
        "PHONE_AGENT_REALTIME_BASE_URL": f"wss://realtime.example.com/v1/realtime?token={REALTIME_TOKEN}",
    }


def assert_no_url_secret(text: str) -> None:
    leaked = [s for s in URL_SECRETS if s in text]
    assert not leaked, f"shown in clear: {leaked}"


def test_mask_url_keeps_host_and_path_but_not_credentials() -> None:
    mask_url = config.mask_url
    shown = mask_url(f"https://proxy-user:{LLM_USER_PASSWORD}@llm.example.com:8443/v1?api_key=abc&region=eu")
    assert shown == "https://proxy-user:****@llm.example.com:8443/v1?api_key=****&region=eu"
    assert mask_url("redis://:pw@127.0.0.1:6379/0") == "redis://:****@127.0.0.1:6379/0"
    assert mask_url("https://ghp_tokenonly@git.example.com/x") == "https://****@git.example.com/x"
    for param in ("key", "token", "secret", "password", "api_key", "sig", "X-Amz-Signature", "access_token"):
        assert mask_url(f"https://h/p?{param}=v4lue") == f"https://h/p?{param}=****"
    assert mask_url("https://api.openai.com/v1") == "https://api.openai.com/v1"


def test_every_url_setting_is_masked_by_the_one_function() -> None:
    for name in config.setting_names():
        if name.endswith("_url"):
            assert config.shown_value(name, "https://u:hunter2-pass@h/x?key=k3y-value") == (
                "https://u:****@h/x?key=****"
            ), name


def test_config_show_json_and_table(tmp_path: Path) -> None:
    env = url_env(f"postgresql+asyncpg://app:{DB_PASSWORD}@127.0.0.1:1/phone?sslpassword={DB_PASSWORD}")
    env["PHONE_AGENT_CONFIG"] = str(tmp_path / "none.json")
    (tmp_path / "none.json").write_text("{}")
    shown = run_cli(["config", "show", "--json"], tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert_no_url_secret(shown.stdout + shown.stderr)
    values = {row["name"]: row["value"] for row in json.loads(shown.stdout)["settings"]}
    assert values["database_url"] == "postgresql+asyncpg://app:****@127.0.0.1:1/phone?sslpassword=****"
    assert values["redis_url"] == "redis://:****@127.0.0.1:1/0"
    table = run_cli(["config", "show"], tmp_path, env={**env, "COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    assert_no_url_secret(table.stdout + table.stderr)


@pytest.fixture
def masked_app(tmp_path: Path, postgres_url: str) -> Iterator[TestClient]:
    """An app on the machine's PostgreSQL (trust auth: the URL's password is not needed to connect)."""
    asyncio.run(_reset_pg(postgres_url))
    database_url = postgres_url.replace(
        "postgresql+asyncpg://postgres@", f"postgresql+asyncpg://postgres:{DB_PASSWORD}@"
    )
    env = {
        **url_env(database_url),
        "ADMIN_PASSWORD": PASSWORD,
        "PHONE_AGENT_ADMIN_STATUS_TOKEN": STATUS_TOKEN,
    }
    del env["REDIS_URL"]  # no Redis with that password on this machine; the CLI test covers it
    app = create_app(make_settings(tmp_path, **env), migrate=True)
    with TestClient(app, client=("192.0.2.10", 5000)) as client:
        yield client


def test_status_admin_page_and_settings_form(masked_app: TestClient) -> None:
    status = masked_app.get("/admin-status", headers={"Authorization": f"Bearer {STATUS_TOKEN}"})
    assert status.status_code == 200, status.text
    assert_no_url_secret(status.text)
    assert status.json()["llm"]["secondary_base_url"] == (
        "https://proxy-user:****@llm.example.com/v1?api_key=****&region=eu"
    )
    csrf = log_in(masked_app)
    page = masked_app.get("/admin")
    assert page.status_code == 200
    assert_no_url_secret(page.text)
    assert "postgres:****@127.0.0.1" in page.text

    # an LLM base URL with a key, set from the form, is shown masked; saving the form unchanged keeps it
    keyed = f"https://llm.example.com/v1?key={LLM_QUERY_KEY}"
    saved = masked_app.post(
        "/admin/settings/llm",
        data={
            "csrf_token": csrf,
            "llm_provider": "openai",
            "llm_model": "gpt-4o-mini",
            "llm_base_url": keyed,
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    runtime = masked_app.app.state.runtime
    assert runtime.current.settings.llm_base_url == keyed
    page = masked_app.get("/admin")
    assert_no_url_secret(page.text)  # the form field and the audit log show it masked
    assert 'value="https://llm.example.com/v1?key=****"' in page.text
    masked_app.post(
        "/admin/settings/llm",
        data={
            "csrf_token": csrf,
            "llm_provider": "openai",
            "llm_model": "gpt-4o-mini",
            "llm_base_url": "https://llm.example.com/v1?key=****",
        },
        follow_redirects=False,
    )
    assert runtime.current.settings.llm_base_url == keyed  # the masked value did not replace the real one


def test_logs_mask_url_credentials(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **url_env(f"postgresql+asyncpg://app:{DB_PASSWORD}@db/phone"))
    sink = io.StringIO()
    setup_logging(settings, sink=sink)
    try:
        logger.info("connecting to {}", settings.database_url)
        logger.info("secondary LLM at {}", settings.llm_secondary_base_url)
        logger.warning("lost postgresql://other:pw@10.0.0.1/db")  # a short password in any URL too
    finally:
        logger.remove()
    text = sink.getvalue()
    assert_no_url_secret(text)
    assert "other:pw@" not in text and "other:****@10.0.0.1" in text


async def test_doctor_report_masks_url_credentials(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, PHONE_AGENT_MEMORY_BACKEND="http", **url_env(f"sqlite+aiosqlite:///{tmp_path}/d.db")
    )
    report = await run_doctor(settings, check_timeout=3, only=["memory.service", "redis"])
    text = report.model_dump_json()
    assert {c.name for c in report.checks} == {"memory.service", "redis"}
    assert all(c.status == "fail" for c in report.checks), text
    assert_no_url_secret(text)
    assert "http://memory:****@127.0.0.1:9" in text
