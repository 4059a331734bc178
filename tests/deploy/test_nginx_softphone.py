"""The admin softphone through deploy/nginx.conf: the owner logs in over HTTPS (orchestrator) and calls
the agent over wss://…/admin/web-call, which nginx carries to the voice bridge (a separate process role
sharing the database): greeting, one turn, the call stored with channel "web"."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from phone_agent.storage.tables import Call
from tests.admin.conftest import PASSWORD
from tests.admin.web_caller import WebCaller, admin_session
from tests.conftest import make_settings
from tests.deploy.nginx import roles_behind_nginx
from tests.fakes.audio import speech_pcm16
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI
from tests.running_agent import SHORT_GREETINGS, agent_env


async def test_softphone_call_through_nginx(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_elevenlabs: FakeElevenLabs,
    monkeypatch: pytest.MonkeyPatch,
    db_rows: object,
) -> None:
    env = agent_env(tmp_path, fake_openai, fake_elevenlabs, ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS)
    settings = make_settings(tmp_path, **env)
    fake_openai.transcripts.extend(["What time do you open?"])
    fake_openai.default_transcript = ""
    fake_openai.script("We open at nine.")
    with roles_behind_nginx(tmp_path, settings) as nginx:
        monkeypatch.setenv("SSL_CERT_FILE", str(nginx.cert))  # httpx and websockets trust it
        session = admin_session(nginx.https)
        async with WebCaller(nginx.https, session) as call:
            assert call.error is None, call.error
            await call.wait_for_agent_audio(timeout=30)
            await call.wait_for_quiet(0.6)
            turn = await call.say(speech_pcm16("What time do you open", 16000))
            await call.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await call.wait_for_quiet(0.6)
    assert call.started is not None and call.marks_sent_back
    [row] = await db_rows(select(Call).where(Call.call_sid == call.started["call_sid"]))  # type: ignore[operator]
    assert (row.channel, row.from_number) == ("web", "+15550100200")
    print(f"\nsoftphone through nginx: voice-to-voice {turn.voice_to_voice:.3f} s (client side)")
