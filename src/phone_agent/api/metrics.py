"""``GET /metrics``: this process's Prometheus metrics (``ops/metrics.py`` feeds them)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from phone_agent.api.deps import SettingsDep, status_allowed
from phone_agent.ops.metrics import exposition

router = APIRouter(tags=["ops"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus scrape endpoint (loopback, or the admin status token as a Bearer token)."""
    if not status_allowed(request, settings.secret("admin_status_token")):
        raise HTTPException(status_code=401, detail="Send the admin status token as a Bearer token.")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
