"""deploy/nginx.conf: Debian's `nginx -t` accepts it, and a real nginx on loopback carries a signed
Twilio webhook to the orchestrator and a Media Stream websocket call to the voice bridge."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from tests.deploy.nginx import Nginx, configure, roles_behind_nginx
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio_rest import new_sid
from tests.ops.servers import free_port
from tests.running_agent import agent_env

AUTH_TOKEN = "nginx-test-auth-token"


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = configure(tmp_path, "127.0.0.1:5000", "127.0.0.1:9100")
    checked = nginx.test_config()
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr


def test_nginx_rejects_a_broken_config(tmp_path: Path) -> None:
    nginx = configure(tmp_path, "127.0.0.1:5000", "127.0.0.1:9100")
    site = nginx.prefix / "phone-agent.conf"
    site.write_text(site.read_text().replace("proxy_read_timeout 4h;", "proxy_read_timeout 4h"))
    assert nginx.test_config().returncode != 0  # the check above would catch a bad edit


async def test_webhook_and_call_through_nginx(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    https_port = free_port()
    env = agent_env(tmp_path, fake_openai, fake_elevenlabs, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    env["PUBLIC_URL"] = f"https://localhost:{https_port}"
    settings = make_settings(tmp_path, **env)
    with roles_behind_nginx(tmp_path, settings, https_port=https_port) as nginx:
        await _drive(nginx, monkeypatch)


async def _drive(nginx: Nginx, monkeypatch: pytest.MonkeyPatch) -> None:
    call_sid = new_sid("CA")
    url = f"{nginx.https}/phone/incoming"
    form = {"CallSid": call_sid, "From": "+15551230001", "To": "+15005550001", "Direction": "inbound"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=nginx.cert), timeout=20) as client:
        # a plain-http request is sent to https, /metrics stays internal, /health reaches the orchestrator
        redirect = await client.get(f"http://127.0.0.1:{nginx.http_port}/phone/incoming")
        assert redirect.status_code == 301
        assert redirect.headers["location"] == "https://127.0.0.1/phone/incoming"
        assert (await client.get(f"{nginx.https}/metrics")).status_code == 404
        health = await client.get(f"{nginx.https}/health")
        assert health.status_code == 200 and health.json()["role"] == "orchestrator"
        forged = await client.post(url, data=form, headers={"X-Twilio-Signature": "forged"})
        assert forged.status_code == 403
        answer = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    twiml = answer.text
    stream_url = re.search(r'<Stream url="([^"]+)"', twiml)
    token = re.search(r'<Parameter name="token" value="([^"]+)"', twiml)
    assert stream_url and token, twiml
    assert stream_url[1] == f"wss://localhost:{nginx.https_port}/media-stream"

    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.cert))  # the caller's TLS trusts our test certificate
    caller = MediaStreamCaller(
        stream_url[1],
        custom_parameters={"caller": "+15551230001", "call_sid": call_sid, "token": token[1]},
        call_sid=call_sid,
        from_number="+15551230001",
    )
    async with caller:
        greeting = await caller.wait_for_agent_audio(timeout=30)
        await caller.wait_for_quiet(0.6, timeout=30)
    assert greeting is not None and caller.protocol_errors == []
    assert caller.agent_audio and all(a.stream_sid == caller.stream_sid for a in caller.agent_audio)
