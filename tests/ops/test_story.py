"""`phone-agent logs CALL_SID`: one call's story from the calls/call_turns tables (+ its log lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phone_agent.ops.story import call_story
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call, Caller, CallTurn, Message
from tests.conftest import make_settings
from tests.test_cli import run_cli

SID = "CA" + "1" * 32


async def seed(runtime: Runtime) -> None:
    start = datetime(2026, 11, 29, 18, 0, 0, tzinfo=UTC)
    async with transaction(runtime.sessions) as session:
        caller = Caller(phone="+15551230000", name="Dana")
        call = Call(
            call_sid=SID,
            caller=caller,
            from_number="+15551230000",
            to_number="+15005550001",
            status="completed",
            started_at=start,
            ended_at=start + timedelta(seconds=42),
            end_reason="caller-hangup",
        )
        call.turns = [
            CallTurn(seq=0, role="agent", text="Hi Dana, welcome back.", marks={}, created_at=start),
            CallTurn(
                seq=1,
                role="caller",
                text="Can I book Tuesday?",
                marks={},
                created_at=start + timedelta(seconds=4),
            ),
            CallTurn(
                seq=2,
                role="agent",
                text="Sure, Tuesday at",
                planned_text="Sure, Tuesday at ten works.",
                interrupted=True,
                tool_calls=[{"name": "book", "arguments": '{"day": "Tuesday"}'}],
                marks={
                    "caller_stopped": 5000,
                    "stt_final": 5200,
                    "llm_first_token": 5550,
                    "tts_first_audio": 5700,
                    "first_audio_sent": 5710,
                },
                created_at=start + timedelta(seconds=6),
            ),
        ]
        session.add(call)
        await session.flush()
        session.add(Message(call_id=call.id, kind="message", body="Call back about Tuesday"))


async def test_story_from_database(tmp_path: Path, database_url: str) -> None:
    runtime = Runtime.create(make_settings(tmp_path, DATABASE_URL=database_url), "all")
    try:
        await upgrade(runtime.engine)
        await seed(runtime)
        async with runtime.sessions() as session:
            story = await call_story(session, SID)
            missing = await call_story(session, "CA-nope")
    finally:
        await runtime.close()
    assert missing is None
    assert story is not None
    assert story["caller"] == {"phone": "+15551230000", "name": "Dana"}
    assert story["duration_seconds"] == 42.0 and story["end_reason"] == "caller-hangup"
    assert [t["role"] for t in story["turns"]] == ["agent", "caller", "agent"]
    assert story["turns"][2]["stages_ms"] == {
        "stt": 200,
        "llm": 350,
        "tts": 150,
        "send": 10,
        "voice_to_voice": 710,
    }
    assert story["turns"][2]["offset_seconds"] == 6.0
    assert story["messages"] == [{"kind": "message", "body": "Call back about Tuesday", "status": "new"}]


async def test_cli_logs_prints_the_story_and_log_lines(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path}/agent.db"
    log = tmp_path / "agent.log"
    log.write_text(
        f"2026-11-29 18:00:01.000 | INFO    | {SID} | x:1 - stream started\n"
        "2026-11-29 18:00:01.000 | INFO    | CAother | x:1 - other call\n"
    )
    runtime = Runtime.create(make_settings(tmp_path, DATABASE_URL=db), "all")
    try:
        await upgrade(runtime.engine)
        await seed(runtime)
    finally:
        await runtime.close()
    env = {"DATABASE_URL": db, "PHONE_AGENT_LOG_FILE": str(log)}
    shown = run_cli(["logs", SID], cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert f"call {SID}  inbound  Dana (+15551230000) → +15005550001" in out
    assert "+   6.0s agent  Sure, Tuesday at  [interrupted; planned: Sure, Tuesday at ten works.]" in out
    assert "tool book" in out and "voice_to_voice 710 ms" in out
    assert "stream started" in out and "other call" not in out
    as_json = json.loads(run_cli(["logs", SID, "--json"], cwd=tmp_path, env=env).stdout)
    assert as_json["call_sid"] == SID and len(as_json["log_lines"]) == 1
    unknown = run_cli(["logs", "CAunknown"], cwd=tmp_path, env=env)
    assert unknown.returncode == 1 and "no call 'CAunknown'" in unknown.stderr
