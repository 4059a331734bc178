"""What the app readies at start-up, so the first call of a fresh process pays for nothing a later
call does not (issue 14): every route's request handling is built before /health answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies import utils as dependency_utils
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from phone_agent.app import create_app
from tests.conftest import make_settings


def test_the_first_webhook_and_media_stream_build_no_route_handling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_settings(tmp_path, PHONE_AGENT_SESSION_SECRET="s"))
    with TestClient(app) as client:
        inspected: list[Any] = []  # endpoints whose signatures FastAPI reads to build their handling
        read_signature = dependency_utils.get_typed_signature
        monkeypatch.setattr(
            dependency_utils,
            "get_typed_signature",
            lambda call: inspected.append(call) or read_signature(call),
        )
        assert client.get("/health").status_code == 200
        assert client.post("/phone/incoming", data={"CallSid": "CA1"}).status_code == 403  # unsigned
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/media-stream") as ws:
            ws.send_json({"event": "connected"})
            ws.receive_json()
        assert client.get("/admin/login").status_code == 200
    assert inspected == []


def test_a_role_taking_calls_imports_at_startup_what_a_call_would_import_on_first_use(tmp_path: Path) -> None:
    # a fresh interpreter: this one has imported everything already
    script = f"""
import asyncio, sys
from pathlib import Path
from phone_agent.app import create_app
from phone_agent.http_pool import openai_client
from phone_agent.voice.shared_models import CALL_MODULES
from tests.conftest import make_settings
app = create_app(make_settings(Path({str(tmp_path)!r})))
before = [m for m in CALL_MODULES if m in sys.modules]
async def start():
    async with app.router.lifespan_context(app):
        missing = [m for m in CALL_MODULES if m not in sys.modules]
        loaded = set(sys.modules)
        client = openai_client(api_key="k", base_url="http://127.0.0.1:9/v1", http=app.state.runtime.http)
        client.chat.completions  # what the first LLM request reaches (the SDK imports it lazily)
        print(before, missing, sorted(set(sys.modules) - loaded))
asyncio.run(start())
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # none loaded by the app's imports, all after start-up, nothing left for the first request to import
    assert done.stdout.strip().splitlines()[-1] == "[] [] []"
