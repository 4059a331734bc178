"""``phone-agent chat``: a real subprocess talking to the fake LLM, tools shown, appointment stored."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.fakes.openai import FakeOpenAI, Reply, ToolCall
from tests.test_cli import run_cli


def test_chat_command_runs_the_brain_in_process(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=3)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    start = f"{day.isoformat()}T10:00"
    fake_openai.script(
        Reply(tool_calls=[ToolCall("book_appointment", {"start": start, "name": "Kim"})]), "Done!"
    )
    env = {"OPENAI_API_KEY": fake_openai.api_key, "PHONE_AGENT_LLM_BASE_URL": fake_openai.url + "/v1"}
    env |= {"PHONE_AGENT_EMBEDDINGS_ENABLED": "false"}
    result = run_cli(["chat", "Book me at ten", "--caller", "+15551112222"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"[tool] book_appointment {{'start': '{start}', 'name': 'Kim'}} -> ok")
    assert lines[-1] == "Ava: Done!"
    assert json.loads(fake_openai.chat_requests[1]["messages"][-1]["content"])["ok"] is True
    with sqlite3.connect(tmp_path / "data" / "phone-agent.db") as db:
        assert db.execute("SELECT name, phone FROM appointments").fetchall() == [("Kim", "+15551112222")]
