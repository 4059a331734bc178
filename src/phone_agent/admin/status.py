"""``GET /admin-status``: the JSON health snapshot (status token, or loopback when none is set)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request

from phone_agent.admin.snapshot import build_snapshot
from phone_agent.api.deps import RuntimeDep

router = APIRouter(tags=["admin"])

LOOPBACK = {"127.0.0.1", "::1"}


def status_allowed(request: Request, token: str | None) -> bool:
    """A matching bearer/``?token=`` when a status token is configured, else only loopback clients."""
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), token.encode())
    return request.client is not None and request.client.host in LOOPBACK


@router.get("/admin-status")
async def admin_status(request: Request, runtime: RuntimeDep) -> dict:
    """Health snapshot for operators and monitors; secrets are never included."""
    if not status_allowed(request, runtime.settings.secret("admin_status_token")):
        raise HTTPException(status_code=401, detail="Send the admin status token as a Bearer token.")
    return await build_snapshot(runtime)
