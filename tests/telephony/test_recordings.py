"""Call recordings end to end: a call on a running agent with ``recording_enabled`` — the caller hears
the consent sentence, the Twilio fake receives the start-recording request, its signed status
callback is stored, the admin proxy streams the audio to a logged-in owner only, and
``phone-agent memory forget`` deletes the recording here and at Twilio."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from phone_agent.app import create_app
from phone_agent.cli import app as cli
from phone_agent.services import Services
from phone_agent.storage.db import create_engine, session_factory, transaction
from phone_agent.storage.tables import Call, CallRecording
from tests.admin.conftest import CSRF_INPUT, PASSWORD
from tests.admin.conftest import log_in as admin_log_in
from tests.conftest import make_settings
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_recordings import silent_wav
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, Agent, agent_env, bound_socket, serve, twilio_env

CALLER = "+15550007777"
CONSENT = "This call is recorded for quality."


def rows(db: str, statement: Any) -> list[Any]:
    async def read() -> list[Any]:
        engine = create_engine(db)
        try:
            async with session_factory(engine)() as session:
                return list((await session.execute(statement)).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def log_in(web: httpx.Client) -> None:
    token = CSRF_INPUT.search(web.get("/admin/login").text).group(1)
    assert web.post("/admin/login", data={"password": PASSWORD, "csrf_token": token}).status_code == 303


async def place_call(agent: Agent, twilio: FakeTwilioREST) -> str:
    async with agent.caller(from_number=CALLER, twilio_rest=twilio) as caller:
        await caller.wait_for_agent_audio(timeout=20)
        for _ in range(200):  # the recording is started beside the greeting, not before it
            if twilio.recordings:
                break
            await asyncio.sleep(0.05)
        await caller.wait_for_quiet(0.3, timeout=30)
    return caller.call_sid


def test_recorded_call_is_stored_played_to_the_owner_and_forgotten(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_elevenlabs: FakeElevenLabs,
    fake_twilio: FakeTwilioREST,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = bound_socket()
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = agent_env(
        tmp_path,
        fake_openai,
        fake_elevenlabs,
        **twilio_env(fake_twilio),
        **SHORT_GREETINGS,
        PUBLIC_URL=public,
        ADMIN_PASSWORD=PASSWORD,
        PHONE_AGENT_RECORDING_ENABLED="true",
        PHONE_AGENT_RECORDING_CONSENT=CONSENT,
    )
    settings = make_settings(tmp_path, **env)
    app = create_app(settings)
    with serve(app, sock=sock) as ws_url:
        agent = Agent(settings, app, ws_url, fake_openai, fake_elevenlabs)
        call_sid = asyncio.run(place_call(agent, fake_twilio))

        # the consent sentence opens the greeting
        spoken = ["".join(c.texts) for c in fake_elevenlabs.contexts.values()]
        assert any(f"{CONSENT} Bella Cucina, this is Ava." in text for text in spoken), spoken

        # the start-recording request, as the SDK sends it
        [start] = [r for r in fake_twilio.requests if r.path.endswith(f"/Calls/{call_sid}/Recordings.json")]
        assert start.method == "POST"
        assert start.form["RecordingStatusCallback"] == public + "/phone/recording-status"
        assert start.form["RecordingChannels"] == "dual"
        [recording_sid] = fake_twilio.recordings
        in_progress = fake_twilio.wait_for_recording_callback("in-progress")
        assert in_progress["status"] == 204

        # the caller hung up: Twilio completes the recording and reports it, signed
        fake_twilio.end_call(call_sid)
        done = fake_twilio.wait_for_recording_callback("completed")
        assert done["status"] == 204
        [row] = rows(settings.database_url, select(CallRecording))
        assert (row.recording_sid, row.call_sid, row.status) == (recording_sid, call_sid, "completed")
        assert row.media_url == done["params"]["RecordingUrl"]
        assert row.duration_seconds == int(done["params"]["RecordingDuration"]) and row.channels == 2

        # a forged callback is refused and changes nothing
        forged = {**done["params"], "RecordingStatus": "absent"}
        with httpx.Client(base_url=public, timeout=20) as stranger:
            answer = stranger.post(
                "/phone/recording-status", data=forged, headers={"X-Twilio-Signature": "Zm9v"}
            )
            assert answer.status_code == 403
            # no session: no audio (401 for the player, the login form for a page visit)
            url = f"/admin/recordings/{recording_sid}"
            assert stranger.get(url, headers={"Accept": "audio/*"}).status_code == 401
            page_visit = stranger.get(url, headers={"Accept": "text/html"})
            assert page_visit.status_code == 303 and page_visit.headers["location"].startswith("/admin/login")
        assert rows(settings.database_url, select(CallRecording.status)) == ["completed"]

        with httpx.Client(base_url=public, timeout=20) as owner:
            log_in(owner)
            audio = owner.get(url, headers={"Accept": "audio/*"})
            assert audio.status_code == 200 and audio.headers["content-type"] == "audio/x-wav"
            assert audio.content == silent_wav(row.duration_seconds, 2)
            media_requests = [
                r for r in fake_twilio.requests if r.path.endswith(f"/Recordings/{recording_sid}.wav")
            ]
            assert media_requests and media_requests[-1].headers["authorization"].startswith("Basic ")
            page = owner.get(f"/admin/calls/{call_sid}").text
            assert f'src="{url}"' in page

        # the caller's data is forgotten: the recording goes too, at Twilio first
        for name in ("DATABASE_URL", "OPENAI_API_KEY", "PUBLIC_URL"):
            monkeypatch.delenv(name, raising=False)
        (tmp_path / "cli-config.json").write_text("{}")
        cli_env = {
            "PHONE_AGENT_CONFIG": str(tmp_path / "cli-config.json"),
            "DATABASE_URL": settings.database_url,
            **twilio_env(fake_twilio),
        }
        for name, value in cli_env.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(cli, ["memory", "forget", CALLER, "--yes"])
        assert (result.exit_code, result.output) == (0, f"{CALLER}: deleted\n")
        assert fake_twilio.deleted_recordings == [recording_sid]
        assert rows(settings.database_url, select(CallRecording)) == []
        assert rows(settings.database_url, select(Call).where(Call.call_sid == call_sid)) == []
        with httpx.Client(base_url=public, timeout=20) as owner:
            log_in(owner)
            assert owner.get(url, headers={"Accept": "audio/*"}).status_code == 404


def test_a_callback_for_a_forgotten_call_deletes_the_recording_at_twilio(
    tmp_path: Path, fake_twilio: FakeTwilioREST
) -> None:
    sock = bound_socket()
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(tmp_path, PUBLIC_URL=public, **twilio_env(fake_twilio))
    fake_twilio.add_call("CA" + "0" * 32, from_=CALLER)
    created = (
        fake_twilio.client()
        .calls("CA" + "0" * 32)
        .recordings.create(recording_status_callback=public + "/phone/recording-status")
    )
    with serve(create_app(settings), sock=sock):
        fake_twilio.end_call("CA" + "0" * 32)  # the call was never stored here (or was deleted since)
        assert fake_twilio.wait_for_recording_callback("completed")["status"] == 204
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            fake_twilio.deleted_recordings != [created.sid]
            or rows(settings.database_url, select(CallRecording))
        ):
            time.sleep(0.05)  # Twilio deletes the media first, then the row goes
        assert fake_twilio.deleted_recordings == [created.sid]
        assert rows(settings.database_url, select(CallRecording)) == []


async def sweep(settings: Any) -> int:
    """Delete orphaned recordings with services of their own (as another process would)."""
    services = Services.build(settings)
    try:
        return await services.delete_orphaned_recordings()
    finally:
        await services.aclose()


async def _recorded_call(runtime: Any, call_sid: str, recording_sid: str, status: str = "completed") -> None:
    async with transaction(runtime.sessions) as session:
        session.add(Call(call_sid=call_sid, from_number=CALLER, status="completed"))
        session.add(CallRecording(recording_sid=recording_sid, call_sid=call_sid, status=status))


def test_admin_caller_delete_deletes_recordings_and_retries_what_twilio_refused(
    tmp_path: Path, fake_twilio: FakeTwilioREST
) -> None:
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, **twilio_env(fake_twilio))
    with TestClient(create_app(settings), client=("192.0.2.10", 5000)) as client:
        csrf = admin_log_in(client)
        runtime = client.app.state.runtime
        sids = []
        for call_sid in ("CA" + "1" * 32, "CA" + "2" * 32):
            fake_twilio.add_call(call_sid, from_=CALLER)
            sids.append(fake_twilio.client().calls(call_sid).recordings.create().sid)
            fake_twilio.end_call(call_sid)
            asyncio.run(_recorded_call(runtime, call_sid, sids[-1]))
        assert f'src="/admin/recordings/{sids[0]}"' in client.get(f"/admin/calls/{'CA' + '1' * 32}").text
        asyncio.run(_recorded_call(runtime, "CA" + "3" * 32, "RE" + "3" * 32, status="absent"))
        short = client.get(f"/admin/calls/{'CA' + '3' * 32}").text
        assert "No recording: the call was too short or silent." in short and "<audio" not in short
        fake_twilio.fail_next(1, 500, path=f"/Recordings/{sids[0]}.json")  # Twilio has a bad moment
        deleted = client.post(
            f"/admin/callers/{CALLER}/delete", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert deleted.status_code == 303
        # (Twilio has no file for the absent one: its 404 counts as deleted)
        assert fake_twilio.deleted_recordings == [sids[1]]
        # the refused one waits (its call is gone, so it is never played) and goes on the next sweep
        assert rows(settings.database_url, select(CallRecording.recording_sid)) == [sids[0]]
        assert client.get(f"/admin/recordings/{sids[0]}", headers={"Accept": "audio/*"}).status_code == 404
        assert asyncio.run(sweep(settings)) == 1  # e.g. the next daily retention round
        assert fake_twilio.deleted_recordings == [sids[1], sids[0]]
        assert rows(settings.database_url, select(CallRecording)) == []
