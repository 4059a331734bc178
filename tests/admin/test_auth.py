"""Admin login: argon2 account, session cookie flags, CSRF on every POST, rate limit, logout, setup."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from phone_agent.app import create_app, routers_for
from phone_agent.storage.tables import AdminAccount, AdminSession, AuditEntry
from tests.admin.conftest import CSRF_INPUT, PASSWORD, log_in, login_csrf
from tests.conftest import make_settings

PUBLIC = {"/admin/login", "/admin/setup", "/admin/static/{name}", "/admin-status"}


def admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /admin, with sample path parameters filled in."""
    out = []
    for route in [r for router in routers_for("all") for r in router.routes]:
        if isinstance(route, APIRoute) and route.path.startswith("/admin") and route.path not in PUBLIC:
            path = route.path.replace("{section}", "voice").replace("{name}", "tts_stability")
            path = path.replace("{call_sid}", "CA-none").replace("{document_id}", "1")
            path = path.replace("{phone}", "+15550001111").replace("{memory_id}", "1")
            out.extend((method, path) for method in sorted(route.methods))
    return out


def test_every_admin_route_needs_a_session(client: TestClient) -> None:
    routes = admin_routes()
    assert ("GET", "/admin") in routes and ("POST", "/admin/settings/voice") in routes and len(routes) >= 9
    for method, path in routes:
        api = client.request(method, path, follow_redirects=False, headers={"Accept": "application/json"})
        assert api.status_code == 401, (method, path, api.status_code)
        if method == "GET":
            page = client.get(path, follow_redirects=False, headers={"Accept": "text/html"})
            assert page.status_code == 303 and page.headers["location"].startswith("/admin/login?next=")
    assert client.get("/admin-status").status_code == 401


def test_login_sets_strict_httponly_cookie_and_logout_ends_session(client: TestClient) -> None:
    response = client.post(
        "/admin/login",
        data={"password": PASSWORD, "csrf_token": login_csrf(client), "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/admin"  # no open redirect
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "pa_admin=" in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    csrf = CSRF_INPUT.search(client.get("/admin").text).group(1)
    assert client.get("/admin-status").status_code == 200  # a session may read the snapshot
    assert client.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/admin", headers={"Accept": "application/json"}).status_code == 401
    runtime = client.app.state.runtime

    async def rows() -> tuple[list[AdminSession], list[AdminAccount]]:
        async with runtime.sessions() as s:
            return (
                list((await s.execute(select(AdminSession))).scalars()),
                list((await s.execute(select(AdminAccount))).scalars()),
            )

    sessions, accounts = asyncio.run(rows())
    assert sessions == []
    assert accounts[0].password_hash.startswith("$argon2id$") and PASSWORD not in accounts[0].password_hash


def _session_cookie(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(
        "/admin/login",
        data={"password": PASSWORD, "csrf_token": login_csrf(client)},
        headers=headers,
        follow_redirects=False,
    )
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "pa_admin=" in v)


def test_cookie_is_secure_behind_https_proxy(tmp_path: Path) -> None:
    # the client fixture's address, 192.0.2.10, is our proxy here
    settings = make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD, PHONE_AGENT_TRUSTED_PROXIES="192.0.2.10")
    with TestClient(create_app(settings), client=("192.0.2.10", 5000)) as client:
        assert "Secure" in _session_cookie(client, {"X-Forwarded-Proto": "https"})


def test_forwarded_proto_from_an_untrusted_client_is_ignored(client: TestClient) -> None:
    assert "Secure" not in _session_cookie(client, {"X-Forwarded-Proto": "https"})


def test_post_without_or_with_wrong_csrf_is_forbidden(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    for headers, data in (({}, {}), ({"X-CSRF-Token": "forged"}, {}), ({}, {"csrf_token": "forged"})):
        response = client.post(
            "/admin/settings/voice", data={"tts_stability": "0.9", **data}, headers=headers
        )
        assert response.status_code == 403
    assert client.app.state.runtime.current.settings.tts_stability == 0.5
    ok = client.post(
        "/admin/settings/voice",
        data={"tts_stability": "0.9"},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
    )
    assert ok.status_code == 200 and ok.json()["changed"] == ["tts_stability"]


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    login_csrf(client)
    response = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": "other"})
    assert response.status_code == 403


def test_five_wrong_passwords_rate_limit_even_the_right_one(client: TestClient) -> None:
    for _ in range(5):
        response = client.post("/admin/login", data={"password": "guess", "csrf_token": login_csrf(client)})
        assert response.status_code == 401 and "Wrong password" in response.text
    blocked = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": login_csrf(client)})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "pa_admin=" not in blocked.headers.get("set-cookie", "")

    async def failures() -> int:
        async with client.app.state.runtime.sessions() as s:
            rows = (
                await s.execute(select(AuditEntry).where(AuditEntry.action == "admin.login_failed"))
            ).all()
            return len(rows)

    assert asyncio.run(failures()) == 5


def test_success_resets_the_failure_count(client: TestClient) -> None:
    for _ in range(4):
        client.post("/admin/login", data={"password": "guess", "csrf_token": login_csrf(client)})
    log_in(client)
    for _ in range(4):
        response = client.post("/admin/login", data={"password": "guess", "csrf_token": login_csrf(client)})
        assert response.status_code == 401


def test_first_run_setup_with_code_from_data_dir(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # no ADMIN_PASSWORD
    with TestClient(create_app(settings)) as client:
        assert client.get("/admin/login", follow_redirects=False).headers["location"] == "/admin/setup"
        page = client.get("/admin/setup")
        token = CSRF_INPUT.search(page.text).group(1)
        code_file = tmp_path / "admin-setup-code"
        assert code_file.stat().st_mode & 0o077 == 0
        form = {"csrf_token": token, "password": "a new long password", "confirm": "a new long password"}
        assert client.post("/admin/setup", data={**form, "code": "wrong"}).status_code == 401
        short = {**form, "code": code_file.read_text().strip(), "password": "short", "confirm": "short"}
        assert client.post("/admin/setup", data=short).status_code == 422
        done = client.post(
            "/admin/setup", data={**form, "code": code_file.read_text().strip()}, follow_redirects=False
        )
        assert done.status_code == 303 and done.headers["location"] == "/admin"
        assert client.get("/admin").status_code == 200
        assert not code_file.exists()
        # once set, setup is closed and the new password logs in
        assert client.get("/admin/setup", follow_redirects=False).headers["location"] == "/admin/login"
    with TestClient(create_app(settings)) as client:
        log_in(client, "a new long password")


def test_env_password_change_replaces_the_stored_hash(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, ADMIN_PASSWORD=PASSWORD))) as client:
        log_in(client)
    with TestClient(create_app(make_settings(tmp_path, ADMIN_PASSWORD="the second password"))) as client:
        bad = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": login_csrf(client)})
        assert bad.status_code == 401
        log_in(client, "the second password")


def test_pages_are_never_framed_nor_cached(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    for path in ("/admin", "/admin/login"):
        response = client.get(path)
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_cli_sets_the_password_and_ends_sessions(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONE_AGENT_", "ADMIN_PASSWORD"))}
        env.update(DATABASE_URL=settings.database_url, PHONE_AGENT_DATA_DIR=str(tmp_path))
        run = [sys.executable, "-m", "phone_agent", "admin", "set-password", "--stdin"]
        short = subprocess.run(run, input="short\n", env=env, cwd=tmp_path, capture_output=True, text=True)
        assert short.returncode == 2 and "at least 10 characters" in short.stderr
        done = subprocess.run(
            run, input="from the shell 123\n", env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        log_in(client, "from the shell 123")
        again = subprocess.run(
            run, input="another one 4567\n", env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert again.returncode == 0
        assert client.get("/admin", headers={"Accept": "application/json"}).status_code == 401  # logged out
