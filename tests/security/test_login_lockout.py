"""Finding 3: the admin login's lockout could be bypassed.

100 concurrent wrong passwords from one client were all checked; with forwarded headers believed
from anyone, a rotating ``X-Forwarded-For`` got every try checked and the audit log recorded the
attacker's chosen addresses. Now attempts are reserved atomically before the check, forwarded
headers count only from ``trusted_proxies``, the account backs off whatever the address, and the
audit log names the real peer. Served by real uvicorn, so requests are truly concurrent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from phone_agent.app import create_app
from phone_agent.errors import ConfigError
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.tables import AuditEntry
from tests.conftest import make_settings
from tests.running_agent import serve

PASSWORD = "correct horse battery"
MAX_FAILURES = 5  # per client address in 15 minutes (admin/throttle.py)
ACCOUNT_FREE_ATTEMPTS = 10  # for the account, before the backoff starts
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _login_form(client: httpx.AsyncClient) -> str:
    page = await client.get("/admin/login")
    assert page.status_code == 200, page.text
    match = CSRF_INPUT.search(page.text)
    assert match is not None
    return match.group(1)


async def _audit(tmp_path: Path) -> list[AuditEntry]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/test.db")
    try:
        async with session_factory(engine)() as session:
            return list((await session.execute(select(AuditEntry))).scalars())
    finally:
        await engine.dispose()


def _served(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return serve(create_app(make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, **env)))


async def test_concurrent_wrong_passwords_are_counted_atomically(tmp_path: Path) -> None:
    with _served(tmp_path) as ws_url:
        async with httpx.AsyncClient(base_url=ws_url.replace("ws://", "http://"), timeout=120) as client:
            csrf = await _login_form(client)
            responses = await asyncio.gather(
                *(
                    client.post("/admin/login", data={"password": f"guess-{i}", "csrf_token": csrf})
                    for i in range(100)
                )
            )
            right_one = await client.post("/admin/login", data={"password": PASSWORD, "csrf_token": csrf})
    statuses = Counter(r.status_code for r in responses)
    assert statuses[401] <= MAX_FAILURES and statuses[401] + statuses[429] == 100, statuses
    assert right_one.status_code == 429 and int(right_one.headers["retry-after"]) > 0
    failures = [e for e in await _audit(tmp_path) if e.action == "admin.login_failed"]
    assert len(failures) == statuses[401]


async def test_forwarded_for_from_an_untrusted_client_is_ignored(tmp_path: Path) -> None:
    # the test client connects from 127.0.0.1; here the only trusted proxy is another host
    with _served(tmp_path, PHONE_AGENT_TRUSTED_PROXIES="192.0.2.1") as ws_url:
        async with httpx.AsyncClient(base_url=ws_url.replace("ws://", "http://"), timeout=60) as client:
            csrf = await _login_form(client)
            statuses = Counter()
            for i in range(30):
                response = await client.post(
                    "/admin/login",
                    data={"password": "guess", "csrf_token": csrf},
                    headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
                )
                statuses[response.status_code] += 1
    assert statuses == {401: MAX_FAILURES, 429: 30 - MAX_FAILURES}
    failures = [e for e in await _audit(tmp_path) if e.action == "admin.login_failed"]
    assert {(e.actor, e.target) for e in failures} == {("anonymous@127.0.0.1", "127.0.0.1")}


async def test_the_account_backs_off_whatever_the_client_address(tmp_path: Path) -> None:
    # behind our own proxy (127.0.0.1 is trusted by default) each try comes from another client
    with _served(tmp_path) as ws_url:
        async with httpx.AsyncClient(base_url=ws_url.replace("ws://", "http://"), timeout=60) as client:
            csrf = await _login_form(client)
            started = asyncio.get_running_loop().time()
            outcomes = []
            for i in range(30):
                address = f"203.0.113.{i + 1}"
                response = await client.post(
                    "/admin/login",
                    data={"password": "guess", "csrf_token": csrf},
                    headers={"X-Forwarded-For": f"10.1.1.1, {address}"},  # the left hop is the client's word
                )
                outcomes.append((address, response.status_code))
            elapsed = asyncio.get_running_loop().time() - started
    checked = [address for address, status in outcomes if status == 401]
    # 10 free tries, then 1 s, 2 s, 4 s ... between tries: a slow machine may fit a few more in
    allowed = ACCOUNT_FREE_ATTEMPTS + max(1, int(elapsed).bit_length())
    assert ACCOUNT_FREE_ATTEMPTS <= len(checked) <= allowed, (len(checked), elapsed)
    assert {status for _, status in outcomes} == {401, 429}  # refused: addresses never seen before
    failures = [e for e in await _audit(tmp_path) if e.action == "admin.login_failed"]
    assert sorted(e.target for e in failures) == sorted(checked)  # the proxy's client, not its own


def test_deploy_files_trust_only_the_proxy(tmp_path: Path) -> None:
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    dockerfile = (deploy / "Dockerfile").read_text()
    assert "FORWARDED_ALLOW_IPS" not in dockerfile and "TRUSTED_PROXIES=*" not in dockerfile
    services = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    networks = services["networks"]["default"]["ipam"]["config"]
    nginx_ip = services["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    assert ipaddress.ip_address(nginx_ip) in ipaddress.ip_network(networks[0]["subnet"])
    for role in ("orchestrator", "voice-bridge", "memory"):
        assert services["services"][role]["environment"]["PHONE_AGENT_TRUSTED_PROXIES"] == nginx_ip
    for unit in (deploy / "systemd").glob("*.service"):  # nginx on the same host
        assert "Environment=PHONE_AGENT_TRUSTED_PROXIES=127.0.0.1,::1\n" in unit.read_text(), unit.name
    assert make_settings(tmp_path, PHONE_AGENT_TRUSTED_PROXIES=nginx_ip).trusted_proxies == nginx_ip
    with pytest.raises(ConfigError, match="never"):
        make_settings(tmp_path, PHONE_AGENT_TRUSTED_PROXIES="*")
