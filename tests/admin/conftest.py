"""Fixtures of the admin tests: an app with an admin password, and a logged-in test client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def login_csrf(client: TestClient) -> str:
    """Open the login page (sets the login CSRF cookie) and return the form's token."""
    page = client.get("/admin/login")
    assert page.status_code == 200, page.text
    return CSRF_INPUT.search(page.text).group(1)


def log_in(client: TestClient, password: str = PASSWORD) -> str:
    """Log in and return the session's CSRF token (from the admin page)."""
    response = client.post(
        "/admin/login",
        data={"password": password, "csrf_token": login_csrf(client), "next": "/admin"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    page = client.get("/admin")
    assert page.status_code == 200
    return CSRF_INPUT.search(page.text).group(1)


async def log_in_over_http(web: httpx.AsyncClient) -> str:
    """``log_in`` for a running agent (an ``httpx.AsyncClient`` on its URL)."""
    login = await web.get("/admin/login")
    token = CSRF_INPUT.search(login.text).group(1)
    await web.post("/admin/login", data={"password": PASSWORD, "csrf_token": token})
    return CSRF_INPUT.search((await web.get("/admin")).text).group(1)


async def save_settings_over_http(
    web: httpx.AsyncClient, csrf: str, section: str, **values: str
) -> list[str]:
    """Save a section of the admin page on a running agent; returns the names it changed."""
    saved = await web.post(
        f"/admin/settings/{section}",
        data={"csrf_token": csrf, **values},
        headers={"Accept": "application/json"},
    )
    changed: list[str] = saved.json()["changed"]
    return changed


@pytest.fixture
def admin_env() -> dict[str, str]:
    """Environment of the admin app (tests add provider URLs and keys)."""
    return {"ADMIN_PASSWORD": PASSWORD}


@pytest.fixture
def client(tmp_path: Path, admin_env: dict[str, str]) -> Iterator[TestClient]:
    """A client of a fresh app (not logged in)."""
    with TestClient(create_app(make_settings(tmp_path, **admin_env)), client=("192.0.2.10", 5000)) as c:
        yield c


@pytest.fixture
def admin(client: TestClient) -> tuple[TestClient, str]:
    """A logged-in client and its CSRF token."""
    return client, log_in(client)
