"""``GET /admin-status``: the JSON health snapshot, for a logged-in admin or the status token."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from phone_agent.admin.auth import session_for
from phone_agent.admin.snapshot import build_snapshot
from phone_agent.api.deps import RuntimeDep, ServicesDep, token_matches

router = APIRouter(tags=["admin"])

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@router.get("/admin-status")
async def admin_status(request: Request, runtime: RuntimeDep, services: ServicesDep) -> dict:
    """Health snapshot for operators and monitors; secrets are never included."""
    if not token_matches(request, services.settings.secret("admin_status_token")):
        if await session_for(services, request) is None:
            raise HTTPException(
                status_code=401,
                detail="Log in on /admin/login, or send the admin status token as a Bearer token.",
            )
    return await build_snapshot(runtime, services)


@router.get("/admin/static/{name}", include_in_schema=False)
async def admin_static(name: str) -> FileResponse:
    """The page's stylesheet and script (public: the login page uses them; they hold no data)."""
    path = STATIC_DIR / name
    if path.suffix not in STATIC_TYPES or path.parent != STATIC_DIR or not path.is_file():
        raise HTTPException(status_code=404, detail="No such file.")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
