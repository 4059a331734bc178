"""``GET /health``: liveness plus database readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from phone_agent import __version__
from phone_agent.api.deps import RuntimeDep
from phone_agent.storage.db import ping

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(runtime: RuntimeDep) -> JSONResponse:
    """200 when the process is up and its database answers, else 503 with the reason."""
    body: dict[str, object] = {"status": "ok", "role": runtime.role, "version": __version__}
    try:
        await ping(runtime.engine)
        body["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        body["status"] = "degraded"
        body["database"] = f"error: {type(exc).__name__}"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
