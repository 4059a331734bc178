"""GET /health: liveness plus database readiness."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.conftest import make_settings


def test_health_ok_and_creates_sqlite_db(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/sub/agent.db"))
    with TestClient(app) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "role": "all", "version": "0.1.0", "database": "ok"}
    assert (tmp_path / "sub" / "agent.db").exists()


def test_health_503_when_database_unreachable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    with TestClient(create_app(settings, "orchestrator", migrate=False)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error:")


def test_roles_serve_their_routes(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path), "memory"), client=("127.0.0.1", 5)) as client:
        assert client.get("/health").json()["role"] == "memory"
        assert client.get("/admin-status").status_code == 404
