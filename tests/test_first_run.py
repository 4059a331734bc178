"""A newcomer's first run: `serve` with no keys says where the admin page and its setup code are;
`chat` and `call` with no OpenAI key say which key is missing and how to set it (exit 2, no
traceback)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.test_cli import free_port, run_cli

TWILIO_TOKEN = "first-run-twilio-token"
CLEARED = ("PHONE_AGENT_", "OPENAI_", "ELEVENLABS_", "TWILIO_", "DEEPGRAM_", "DATABASE_URL", "ADMIN_")


def wait_for(pattern: str, log: Path, process: subprocess.Popen[bytes], within: float = 90) -> re.Match[str]:
    """The first match of ``pattern`` in the growing ``log`` of a running process."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        assert process.poll() is None, f"serve exited:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in serve's output:\n{log.read_text()[-3000:]}")


def test_serve_with_no_keys_prints_the_admin_url_and_the_setup_code_file(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env["TWILIO_AUTH_TOKEN"] = TWILIO_TOKEN  # only so that `call` below is let in
    log = tmp_path / "serve.out"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "phone_agent", "serve", "--host", "0.0.0.0", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = wait_for(r"admin page: (http://\S+)", log, process).group(1)
        assert url == f"http://localhost:{port}/admin"  # a wildcard bind is opened as localhost
        path = Path(wait_for(r"setup code from (/\S+?) \(", log, process).group(1))
        assert path.is_absolute() and path == (tmp_path / "data" / "admin-setup-code").resolve()
        code = path.read_text().strip()
        assert len(code) >= 12 and path.stat().st_mode & 0o077 == 0  # the owner's eyes only
        setup = httpx.get(url + "/setup", timeout=10)  # the printed URL is the admin page
        assert setup.status_code == 200 and "setup code" in setup.text.lower()
        assert path.read_text().strip() == code  # opening the page does not change the code

        # `call` on this machine: the agent answers with its fallback, and the CLI says why
        called = run_cli(
            ["call", f"http://127.0.0.1:{port}", "--say", "Hello?", "--no-transcript"],
            tmp_path,
            env={"TWILIO_AUTH_TOKEN": TWILIO_TOKEN},
        )
        assert called.returncode == 2, called.stdout + called.stderr
        assert "did not answer with <Connect><Stream>" in called.stdout
        assert "speech-to-text needs OPENAI_API_KEY" in called.stdout and "config.json" in called.stdout
        assert "Traceback" not in called.stdout + called.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_with_an_admin_password_writes_no_setup_code(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env["ADMIN_PASSWORD"] = "a-long-admin-password"
    log = tmp_path / "serve.out"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "phone_agent", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(r"Application startup complete", log, process)
        assert f"admin page: http://127.0.0.1:{port}/admin" in log.read_text()
        assert "setup code" not in log.read_text()
        assert not (tmp_path / "data" / "admin-setup-code").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_chat_without_an_openai_key_names_the_key_and_exits_2(tmp_path: Path) -> None:
    result = run_cli(["chat", "Hello?"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "OPENAI_API_KEY" in result.stderr and "config.json" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "APIConnectionError" not in result.stderr + result.stdout
