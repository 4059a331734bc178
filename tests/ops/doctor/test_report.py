"""The doctor's report: stable JSON schema, text rendering, CLI exit codes, --fix, /admin-status."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from phone_agent.app import create_app
from phone_agent.ops.doctor import render_text, run_doctor
from tests.conftest import make_settings
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.test_cli import run_cli

CHECK_NAMES = [
    "twilio.account",
    "twilio.webhook",
    "openai.key",
    "openai.model",
    "elevenlabs.key",
    "elevenlabs.voice",
    "local.speech",
    "database",
    "migrations",
    "memory.service",
    "redis",
    "ports.orchestrator",
    "ports.voice-bridge",
    "ports.memory",
    "tls.certificate",
    "tls.renewal",
    "host.disk",
    "host.cpu",
    "host.memory",
    "process.limits",
    "logs.errors",
]
CHECK_KEYS = {"name", "group", "status", "detail", "fix", "duration_ms"}


def assert_schema(body: dict) -> None:
    assert set(body) >= {"schema_version", "version", "status", "counts", "checks"}
    assert body["schema_version"] == 1
    assert [c["name"] for c in body["checks"]] == CHECK_NAMES
    assert all(set(c) == CHECK_KEYS for c in body["checks"])
    assert all(c["status"] in ("pass", "warn", "fail") for c in body["checks"])
    assert body["counts"] == {
        s: sum(c["status"] == s for c in body["checks"]) for s in ("pass", "warn", "fail")
    }


async def test_report_schema_and_text(tmp_path: Path) -> None:
    report = await run_doctor(make_settings(tmp_path), check_timeout=3)
    body = json.loads(report.model_dump_json())
    assert_schema(body)
    assert body["status"] == "fail" and report.exit_code == 1  # no provider keys on an empty config
    text = render_text(report)
    assert text.splitlines()[0].startswith("FAIL  twilio.account")
    assert "fix: Set both" in text
    assert text.splitlines()[-1].startswith("FAIL: ")


def test_cli_doctor_json_and_exit_codes(tmp_path: Path) -> None:
    failing = run_cli(["doctor", "--json", "--timeout", "3"], cwd=tmp_path)
    assert failing.returncode == 1, failing.stderr
    assert_schema(json.loads(failing.stdout))
    bad_option = run_cli(["doctor", "--role-host", "voice-bridge"], cwd=tmp_path)
    assert bad_option.returncode == 2 and "ROLE=HOST" in bad_option.stderr
    passing = run_cli(["doctor", "--only", "host.disk", "--only", "redis"], cwd=tmp_path)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert passing.stdout.startswith("PASS  redis") or passing.stdout.startswith("PASS  host.disk")
    assert "2 passed, 0 warnings, 0 failed" in passing.stdout


def test_cli_doctor_fix_sets_the_webhook(tmp_path: Path, fake_twilio: FakeTwilioREST) -> None:
    number = fake_twilio.add_number("+15005550001", voice_url="https://old.example.com/x")
    env = {
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        "TWILIO_PHONE_NUMBER": "+15005550001",
        "PUBLIC_URL": "https://agent.example.com",
        "PHONE_AGENT_TWILIO_API_BASE_URL": fake_twilio.url,
    }
    broken = run_cli(["doctor", "--only", "twilio"], cwd=tmp_path, env=env)
    assert broken.returncode == 1 and "FAIL  twilio.webhook" in broken.stdout
    fixed = run_cli(["doctor", "--only", "twilio", "--fix", "--json"], cwd=tmp_path, env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    body = json.loads(fixed.stdout)
    assert body["fixed"].startswith("set +15005550001 voice webhook")
    assert [c["status"] for c in body["checks"]] == ["pass", "pass"]
    assert fake_twilio.numbers[number["sid"]]["voice_url"] == "https://agent.example.com/phone/incoming"
    assert fake_twilio.auth_token not in fixed.stdout


def test_admin_status_carries_the_doctor_report(tmp_path: Path) -> None:
    env = {"PHONE_AGENT_DOCTOR_TIMEOUT": "3", "PHONE_AGENT_ADMIN_STATUS_TOKEN": "status-token-123"}
    app = create_app(make_settings(tmp_path, **env), "all")
    auth = {"Authorization": "Bearer status-token-123"}
    with TestClient(app) as client:
        first = client.get("/admin-status", headers=auth).json()["doctor"]
        second = client.get("/admin-status", headers=auth).json()["doctor"]
    assert [c["name"] for c in first["checks"]] == CHECK_NAMES
    assert first["status"] in ("pass", "warn", "fail") and "checked_at" in first
    assert first["checked_at"] == second["checked_at"]  # cached, not rerun on every request
    migrations = next(c for c in first["checks"] if c["name"] == "migrations")
    assert migrations["status"] == "pass"  # checked through the app's own (migrated) database


def test_every_check_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "deploy.md").read_text()
    missing = [
        name for name in CHECK_NAMES if f"`{name}`" not in docs and f"`{name.split('.')[0]}.*`" not in docs
    ]
    assert not missing, f"doctor checks missing from docs/deploy.md: {missing}"
