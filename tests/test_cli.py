"""The phone-agent CLI: serve on an empty directory, config show, bad config exit 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def run_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    python_args: tuple[str, ...] = (),
):
    """``python [python_args] -m phone_agent args`` in ``cwd`` with no provider keys or settings from env."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PHONE_AGENT_", "OPENAI_", "ELEVENLABS_", "TWILIO_", "DATABASE_URL"))
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, *python_args, "-m", "phone_agent", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_on_empty_directory(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONE_AGENT_", "DATABASE_URL"))}
    env["PHONE_AGENT_ADMIN_STATUS_TOKEN"] = "cli-status-token-123"
    proc = subprocess.Popen(
        [sys.executable, "-m", "phone_agent", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None and response.status_code == 200, "serve did not answer /health"
        status = httpx.get(
            f"http://127.0.0.1:{port}/admin-status",
            headers={"Authorization": "Bearer cli-status-token-123"},
            timeout=5,
        ).json()
        assert status["database"]["backend"] == "sqlite" and status["database"]["migrations_current"]
        assert (tmp_path / "data" / "phone-agent.db").exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # reads and closes its output pipe too


def test_bad_config_exits_2_with_one_paragraph(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"llm_temperature": "warm",}')
    result = run_cli(["serve"], tmp_path)
    assert result.returncode == 2
    assert "config.json: not valid JSON at line 1" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (tmp_path / "config.json").write_text('{"llm_temperature": "warm"}')
    result = run_cli(["config", "show"], tmp_path)
    assert result.returncode == 2
    assert "bad value for 'llm_temperature'" in result.stderr and "Traceback" not in result.stderr


def test_bad_role_exits_2(tmp_path: Path) -> None:
    result = run_cli(["serve", "--role", "kitchen"], tmp_path)
    assert result.returncode == 2 and "--role must be one of" in result.stderr


def test_config_show_masks_secrets_and_shows_sources(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"business_name": "Acme Insurance"}))
    result = run_cli(
        ["config", "show", "--json"],
        tmp_path,
        env={"OPENAI_API_KEY": "sk-live-abcdefghijklmnop9876", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["business_name"] == {
        **rows["business_name"],
        "value": "Acme Insurance",
        "source": "config.json",
    }
    assert rows["openai_api_key"]["value"] == "sk-…9876" and rows["openai_api_key"]["source"] == "env"
    assert "abcdefghijklmnop" not in result.stdout
    table = run_cli(
        ["config", "show"], tmp_path, env={"OPENAI_API_KEY": "sk-live-abcdefghijklmnop9876", "COLUMNS": "200"}
    )
    assert "sk-…9876" in table.stdout and "abcdefghijklmnop" not in table.stdout


def test_db_upgrade_command(tmp_path: Path) -> None:
    result = run_cli(["db", "upgrade"], tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    assert (tmp_path / "x.db").exists()


def test_a_bad_time_zone_stops_config_show_serve_and_doctor_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"timezone": "America/NewYork"}')
    for command in (["config", "show"], ["serve"], ["doctor"]):
        result = run_cli(command, tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "bad value for 'timezone'" in result.stderr and "America/New_York" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
