"""The three roles as separate `phone-agent serve --role …` processes on loopback, with the machine's
PostgreSQL and Redis: each serves only its routes, a full simulated call runs through them, an admin
change on the orchestrator reaches the voice bridge over Redis, and `phone-agent doctor` sees the
split deployment healthy."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.brain.persona import greeting_for
from phone_agent.ops.control import ControlBus
from phone_agent.runtime import Runtime
from phone_agent.storage.tables import Call, CallTurn
from tests.admin.conftest import log_in
from tests.conftest import _reset_pg, make_settings
from tests.fakes.audio import speech_wav
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import FakeTwilioREST, new_sid
from tests.ops.servers import free_port
from tests.running_agent import agent_env
from tests.test_cli import run_cli

REDIS = "redis://127.0.0.1:6379/0"
AUTH_TOKEN = "three-roles-auth-token"
STATUS_TOKEN = "three-roles-status-token"
MEMORY_TOKEN = "three-roles-memory-token"
ADMIN_PASSWORD = "three-roles-admin-password"
ROLES = ("orchestrator", "voice-bridge", "memory")
# Each role's deadline to answer /health, from its own start. The three start at once on a 2-core
# machine that may be busy (and these tests run niced): a few seconds when idle, far more when loaded.
READY_SECS = 240
HEALTH_TIMEOUT_SECS = 10  # one /health request; a loaded process answers late, not never


def wait_until_healthy(
    role: str, process: subprocess.Popen[bytes], port: int, output: Path, *, started: float
) -> None:
    """Until ``role`` answers 200 on /health as itself; fails with its exit code or the last answer,
    and the end of its output (stdout + stderr), when it exits or misses ``READY_SECS``."""
    deadline = started + READY_SECS
    last = "no answer yet"
    while process.poll() is None:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=HEALTH_TIMEOUT_SECS)
            if health.status_code == 200 and health.json().get("role") == role:
                return
            last = f"{health.status_code} {health.text[:300]}"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            problem = f"not healthy {READY_SECS} s after its start (last: {last})"
            break
        time.sleep(0.25)
    else:  # the loop ended because the process exited
        problem = f"exited with code {process.returncode} before it was healthy"
    pytest.fail(f"{role} {problem}; its output:\n{output.read_text(errors='replace')[-3000:]}")


@contextmanager
def role_processes(tmp_path: Path, env: dict[str, str], ports: dict[str, int]) -> Iterator[None]:
    """Start one `phone-agent serve --role R` per role; wait for every /health; stop them after."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    started: dict[str, float] = {}
    logs = {role: (tmp_path / f"{role}.out").open("wb") for role in ROLES}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PHONE_AGENT_", "OPENAI_", "TWILIO_"))}
    try:
        for role in ROLES:
            started[role] = time.monotonic()
            data_dir = tmp_path / f"data-{role}"  # nothing shared through disk: only PG + Redis
            processes[role] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "phone_agent",
                    "serve",
                    "--role",
                    role,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports[role]),
                ],
                cwd=tmp_path,
                env=clean
                | env
                | {
                    "PHONE_AGENT_DATA_DIR": str(data_dir),
                    "PHONE_AGENT_LOG_FILE": str(tmp_path / f"{role}.log"),
                },
                stdout=logs[role],
                stderr=subprocess.STDOUT,
            )
        for role in ROLES:  # they start together: each deadline runs from its own start
            output = tmp_path / f"{role}.out"
            wait_until_healthy(role, processes[role], ports[role], output, started=started[role])
        yield
    finally:
        for process in processes.values():
            process.terminate()
        for role, process in processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            logs[role].close()


@pytest.fixture
def split_env(
    tmp_path: Path,
    postgres_url: str,
    fake_openai: FakeOpenAI,
    fake_elevenlabs: FakeElevenLabs,
    fake_twilio: FakeTwilioREST,
) -> tuple[dict[str, str], dict[str, int]]:
    asyncio.run(_reset_pg(postgres_url))
    fake_twilio.auth_token = AUTH_TOKEN  # the roles hang up through the Twilio REST fake
    ports = {role: free_port() for role in ROLES}
    env = agent_env(tmp_path, fake_openai, fake_elevenlabs) | {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": REDIS,
        "PHONE_AGENT_MEMORY_BACKEND": "http",
        "PHONE_AGENT_MEMORY_URL": f"http://127.0.0.1:{ports['memory']}",
        "PHONE_AGENT_MEMORY_SERVICE_TOKEN": MEMORY_TOKEN,
        "PHONE_AGENT_ORCHESTRATOR_PORT": str(ports["orchestrator"]),
        "PHONE_AGENT_VOICE_BRIDGE_PORT": str(ports["voice-bridge"]),
        "PHONE_AGENT_MEMORY_PORT": str(ports["memory"]),
        "PHONE_AGENT_VOICE_BRIDGE_URL": f"ws://127.0.0.1:{ports['voice-bridge']}/media-stream",
        "PUBLIC_URL": f"http://127.0.0.1:{ports['orchestrator']}",
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PHONE_AGENT_TWILIO_API_BASE_URL": fake_twilio.url,
        "PHONE_AGENT_ADMIN_STATUS_TOKEN": STATUS_TOKEN,
        "PHONE_AGENT_LOG_LEVEL": "INFO",
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    return env, ports


async def answer_call(ports: dict[str, int], call_sid: str, **caller: Any) -> MediaStreamCaller:
    """Twilio's side: the signed webhook to the orchestrator, then a caller on the stream it names."""
    url = f"http://127.0.0.1:{ports['orchestrator']}/phone/incoming"
    form = {"CallSid": call_sid, "From": "+15551230001", "To": "+15005550001", "Direction": "inbound"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    stream = re.search(r'<Stream url="([^"]+)"', answer.text)
    token = re.search(r'<Parameter name="token" value="([^"]+)"', answer.text)
    assert stream and token, answer.text
    assert stream[1] == f"ws://127.0.0.1:{ports['voice-bridge']}/media-stream"
    return MediaStreamCaller(
        stream[1],
        custom_parameters={"caller": "+15551230001", "call_sid": call_sid, "token": token[1]},
        call_sid=call_sid,
        from_number="+15551230001",
        **caller,
    )


def save_on_admin_page(port: int, business_name: str) -> httpx.Response:
    """Log in to the orchestrator's admin page and save a personality setting (as a browser does)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as admin:
        csrf = log_in(admin, ADMIN_PASSWORD)  # type: ignore[arg-type]  # httpx.Client, same API
        return admin.post(
            "/admin/settings/personality",
            data={"business_name": business_name, "csrf_token": csrf},
            headers={"Accept": "application/json"},
        )


async def wait_for_log(path: Path, text: str) -> None:
    """Until a role's output contains ``text``."""
    deadline = time.monotonic() + 20
    while text not in await asyncio.to_thread(path.read_text, errors="replace"):
        assert time.monotonic() < deadline, f"{path.name} never logged {text!r}"
        await asyncio.sleep(0.1)


async def rows_when(
    runtime: Runtime, call_sid: str, turns: int, *, ended: bool = False
) -> tuple[Call, list[CallTurn]]:
    """The call and its turns once the voice bridge has written ``turns`` of them (and closed it)."""
    deadline = time.monotonic() + 30
    while True:
        async with runtime.sessions() as session:
            call = (await session.execute(select(Call).where(Call.call_sid == call_sid))).scalar_one_or_none()
            found = []
            if call is not None:
                stmt = select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
                found = list((await session.execute(stmt)).scalars())
        if call is not None and len(found) >= turns and (call.ended_at is not None or not ended):
            return call, found
        assert time.monotonic() < deadline, f"call {call_sid}: {len(found)} turns written"
        await asyncio.sleep(0.2)


async def test_three_processes_serve_a_call(
    tmp_path: Path,
    split_env: tuple[dict[str, str], dict[str, int]],
    fake_openai: FakeOpenAI,
    fake_elevenlabs: FakeElevenLabs,
    fake_twilio: FakeTwilioREST,
) -> None:
    env, ports = split_env
    upgraded = run_cli(["db", "upgrade"], cwd=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    runtime = Runtime.create(make_settings(tmp_path, **env), "all")
    with role_processes(tmp_path, env, ports):
        base = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
        bearer = {"Authorization": f"Bearer {STATUS_TOKEN}"}
        memory_auth = {"Authorization": f"Bearer {MEMORY_TOKEN}"}
        async with httpx.AsyncClient(timeout=20) as client:
            for role in ROLES:
                health = (await client.get(base[role] + "/health")).json()
                assert health["role"] == role and health["database"] == "ok", health
            # each role serves its own routes only
            status = await client.get(base["orchestrator"] + "/admin-status", headers=bearer)
            assert status.status_code == 200 and status.json()["database"]["backend"] == "postgresql"
            for role in ("voice-bridge", "memory"):
                assert (await client.get(base[role] + "/admin-status", headers=bearer)).status_code == 404
            caller_path = "/memory/callers/+15551230001"
            assert (await client.get(base["memory"] + caller_path, headers=memory_auth)).status_code == 200
            assert (
                await client.get(base["orchestrator"] + caller_path, headers=memory_auth)
            ).status_code == 404
            assert (await client.get(base["orchestrator"] + "/media-stream")).status_code == 404

        # a full call: webhook on the orchestrator, media stream on the voice bridge, rows in PostgreSQL
        fake_openai.transcripts.append("What time do you open?")
        fake_openai.script("We open at nine every weekday.")
        call_sid = new_sid("CA")
        caller = await answer_call(ports, call_sid)
        async with caller:
            await caller.wait_for_agent_audio(timeout=30)  # the greeting
            await caller.wait_for_quiet(0.6, timeout=30)
            turn = await caller.say_wav(speech_wav("What time do you open"))
            await caller.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
        assert caller.protocol_errors == []
        try:
            call, turns = await rows_when(runtime, call_sid, 3)
            assert [(t.role, t.text) for t in turns[:3]] == [
                ("agent", greeting_for(make_settings(tmp_path, **env))),
                ("caller", "What time do you open?"),
                ("agent", "We open at nine every weekday."),
            ]
            assert call.stream_sid == caller.stream_sid

            # an admin change saved on the orchestrator's admin page reaches the voice bridge via Redis
            saved = await asyncio.to_thread(save_on_admin_page, ports["orchestrator"], "Trattoria Nova")
            assert saved.status_code == 200 and saved.json()["changed"] == ["business_name"], saved.text
            await wait_for_log(tmp_path / "voice-bridge.out", "settings reloaded after a config change")
            second_sid = new_sid("CA")
            second = await answer_call(ports, second_sid, twilio_rest=fake_twilio)
            async with second:
                await second.wait_for_agent_audio(timeout=30)
                spoken = " ".join(m.get("text", "") for m in fake_elevenlabs.messages)
                assert "Trattoria Nova" in spoken, spoken[-300:]
                # "hang up" for a live call, sent from another process, ends it in the voice bridge
                bus = ControlBus(redis_url=REDIS)
                await bus.start()
                try:
                    await bus.send_call_command(second_sid, "hangup", reason="admin-hangup")
                finally:
                    await bus.close()
                await second.wait_for_close(timeout=30)
            assert second.ended_by == "agent_hangup"
            assert {"sid": second_sid, "params": {"Status": "completed"}} in fake_twilio.call_updates
            ended, _ = await rows_when(runtime, second_sid, 1, ended=True)
            assert ended.end_reason == "admin-hangup" and ended.ended_at is not None
        finally:
            await runtime.close()

        # the voice bridge counted both calls, their turn stages and how they ended
        async with httpx.AsyncClient(timeout=20) as client:
            scraped = await client.get(base["voice-bridge"] + "/metrics", headers=bearer)
        assert scraped.status_code == 200
        exposition = scraped.text
        assert 'phone_agent_calls_total{direction="inbound"} 2.0' in exposition
        assert "phone_agent_calls_active 0.0" in exposition
        assert 'phone_agent_calls_ended_total{reason="admin-hangup"} 1.0' in exposition
        assert re.search(r'phone_agent_turn_stage_seconds_count\{stage="voice_to_voice"\} [1-9]', exposition)

        # the call's story from PostgreSQL, with the voice bridge's log lines (each carries the call SID)
        story = run_cli(
            ["logs", call_sid],
            cwd=tmp_path,
            env=env | {"PHONE_AGENT_LOG_FILE": str(tmp_path / "voice-bridge.log")},
        )
        assert story.returncode == 0, story.stderr
        assert f"call {call_sid}  inbound  unknown caller (+15551230001)" in story.stdout
        assert "caller What time do you open?" in story.stdout
        assert "agent  We open at nine every weekday." in story.stdout
        assert "timing: stt" in story.stdout and "voice_to_voice" in story.stdout
        assert "media stream started" in story.stdout.split("log lines:")[1]

        # the doctor sees the split deployment: every role listening, memory + Redis + PostgreSQL up
        doctor = run_cli(
            ["doctor", "--json", "--only", "ports", "--only", "services", "--only", "storage"],
            cwd=tmp_path,
            env=env,
        )
        report = json.loads(doctor.stdout)
        assert doctor.returncode == 0, doctor.stdout
        assert {c["name"]: c["status"] for c in report["checks"]} == {
            "database": "pass",
            "migrations": "pass",
            "memory.service": "pass",
            "redis": "pass",
            "ports.orchestrator": "pass",
            "ports.voice-bridge": "pass",
            "ports.memory": "pass",
        }
