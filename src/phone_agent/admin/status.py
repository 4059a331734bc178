"""``GET /admin-status``: the JSON health snapshot, for a logged-in admin or the status token."""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from phone_agent.admin.auth import session_for
from phone_agent.admin.snapshot import build_snapshot
from phone_agent.api.deps import RuntimeDep

router = APIRouter(tags=["admin"])

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def token_matches(request: Request, token: str | None) -> bool:
    """A configured status token sent as ``Authorization: Bearer`` or ``?token=``."""
    if not token:
        return False
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    given = given or request.query_params.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def status_allowed(request: Request, token: str | None) -> bool:
    """For machine endpoints (``/metrics``): the status token when one is set, else loopback clients."""
    if token:
        return token_matches(request, token)
    return request.client is not None and request.client.host in LOOPBACK


@router.get("/admin-status")
async def admin_status(request: Request, runtime: RuntimeDep) -> dict:
    """Health snapshot for operators and monitors; secrets are never included."""
    if not token_matches(request, runtime.settings.secret("admin_status_token")):
        if await session_for(runtime, request) is None:
            raise HTTPException(
                status_code=401,
                detail="Log in on /admin/login, or send the admin status token as a Bearer token.",
            )
    return await build_snapshot(runtime)


@router.get("/admin/static/{name}", include_in_schema=False)
async def admin_static(name: str) -> FileResponse:
    """The page's stylesheet and script (public: the login page uses them; they hold no data)."""
    path = STATIC_DIR / name
    if path.suffix not in STATIC_TYPES or path.parent != STATIC_DIR or not path.is_file():
        raise HTTPException(status_code=404, detail="No such file.")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
