"""Call recordings on the admin page: ``GET /admin/recordings/{sid}`` streams a recording's audio
from Twilio to the logged-in owner.

The browser never talks to Twilio and never sees the account's credentials: this route fetches the
media with them (``Range`` passed on, so the player can seek) and streams it through. Without a
session a page request is sent to the login form and any other request gets 401 (``require_admin``).
"""

from __future__ import annotations

from typing import Any

import httpx2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from loguru import logger
from sqlalchemy import select
from starlette.background import BackgroundTask

from phone_agent.admin import auth
from phone_agent.api.deps import ServicesDep
from phone_agent.errors import NotFoundError, ProviderError
from phone_agent.services import Services
from phone_agent.storage.recordings import recording_by_sid, recordings_of_call
from phone_agent.storage.tables import Call
from phone_agent.telephony.recordings import MEDIA_TYPES, media_url

router = APIRouter(tags=["admin"], dependencies=[Depends(auth.require_admin)])

PASSED_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges")


async def call_recordings(services: Services, call_sid: str) -> list[dict[str, Any]]:
    """A call's recordings as the call page shows them (playable once Twilio completed them)."""
    async with services.sessions() as session:
        rows = await recordings_of_call(session, call_sid)
    return [
        {
            "sid": r.recording_sid,
            "status": r.status,
            "duration_seconds": r.duration_seconds,
            "playable": r.status == "completed",
            "url": f"/admin/recordings/{r.recording_sid}",
        }
        for r in rows
    ]


@router.get("/admin/recordings/{recording_sid}")
async def play_recording(recording_sid: str, request: Request, services: ServicesDep) -> Response:
    """The recording's audio (WAV, or ``?format=mp3``) fetched from Twilio with the account's credentials."""
    fmt = request.query_params.get("format", "wav")
    settings = services.settings
    async with services.sessions() as session:
        row = await recording_by_sid(session, recording_sid)
        call = await session.scalar(select(Call.id).where(Call.call_sid == row.call_sid)) if row else None
    if row is None or call is None or row.status != "completed":
        raise NotFoundError(f"No playable recording {recording_sid!r}.")
    url = media_url(settings, row, fmt if fmt in MEDIA_TYPES else "wav")
    headers = {"Accept": MEDIA_TYPES[fmt if fmt in MEDIA_TYPES else "wav"]}
    if "range" in request.headers:
        headers["Range"] = request.headers["range"]
    auth_pair = (settings.twilio_account_sid or "", settings.secret("twilio_auth_token") or "")
    try:
        upstream = await services.http.send(
            services.http.build_request("GET", url, headers=headers, timeout=30),
            stream=True,
            auth=auth_pair,
            follow_redirects=True,  # Twilio may redirect to its media store; the client drops auth off-host
        )
    except httpx2.HTTPError as exc:
        raise ProviderError("twilio", f"recording media: {type(exc).__name__}") from exc
    if upstream.status_code >= 400:
        await upstream.aclose()
        logger.warning("recording {}: Twilio answered {}", recording_sid, upstream.status_code)
        if upstream.status_code == 404:
            raise NotFoundError(f"Twilio has no recording {recording_sid!r} any more.")
        raise ProviderError("twilio", f"recording media: HTTP {upstream.status_code}")
    passed = {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_HEADERS}
    passed["Cache-Control"] = "private, no-store"
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=passed,
        background=BackgroundTask(upstream.aclose),
    )
