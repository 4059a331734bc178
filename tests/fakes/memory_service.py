"""`FakeMemoryService`: the memory service's HTTP API (``phone-agent serve --role memory``) as
``HTTPMemoryStore`` calls it, with the fault injection of every fake.

Routes (bearer token checked when ``token`` is set; 401 ``{"detail": ...}`` otherwise, as FastAPI
answers): ``GET /memory/callers/{phone}`` (a ``CallerContext``; callers added with ``add_caller``
are known), ``POST /memory/retrieve`` (``{"items": [...]}``), ``POST /knowledge/search``
(``{"hits": [...]}`` from ``knowledge``), ``POST /memory/store`` (recorded in ``stored``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.base import ASGIApp, FakeServer


class FakeMemoryService(FakeServer):
    """Local memory service. Records requests; ``callers`` by phone, ``knowledge`` hits, ``stored`` writes."""

    name = "memory"

    def __init__(self, *, token: str | None = "fake-memory-token") -> None:
        super().__init__()
        self.token = token
        self.callers: dict[str, dict[str, Any]] = {}
        self.knowledge: list[dict[str, Any]] = []
        self.stored: list[dict[str, Any]] = []

    def add_caller(self, phone: str, name: str, **profile: Any) -> None:
        """Make ``phone`` a known caller named ``name``."""
        self.callers[phone] = {"name": name, "profile": {"name": name, **profile}}

    def reset_state(self) -> None:
        self.callers.clear()
        self.knowledge.clear()
        self.stored.clear()

    def error_body(self, status: int) -> dict[str, Any]:
        return {"detail": f"Injected failure {status}"}

    def build_app(self) -> ASGIApp:
        routes = [
            Route("/memory/callers/{phone:path}", self._caller, methods=["GET"]),
            Route("/memory/retrieve", self._retrieve, methods=["POST"]),
            Route("/knowledge/search", self._search, methods=["POST"]),
            Route("/memory/store", self._store, methods=["POST"]),
        ]
        return Starlette(routes=routes)

    def _denied(self, request: Request) -> Response | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"detail": "memory service token missing or wrong"}, status_code=401)
        return None

    async def _caller(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        phone = unquote(request.path_params["phone"])
        known = self.callers.get(phone)
        body = {"phone": phone, "name": None, "profile": {}, "memories": [], "known": False}
        if known is not None:
            body.update(known, known=True)
        return JSONResponse(body)

    async def _retrieve(self, request: Request) -> Response:
        return self._denied(request) or JSONResponse({"items": []})

    async def _search(self, request: Request) -> Response:
        return self._denied(request) or JSONResponse({"hits": list(self.knowledge)})

    async def _store(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        body = await request.json()
        self.stored.append(body)
        return JSONResponse({"stored": len(body.get("items", []))})
