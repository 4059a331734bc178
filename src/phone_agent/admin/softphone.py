"""``/admin/web-call``: the admin page's softphone. The owner's browser calls the agent.

One websocket per call, opened by ``static/softphone.js`` from a logged-in admin page. The call runs
the same pipeline a phone call runs (``voice.pipeline.run_call`` with ``channel="web"``: persona,
the test caller's memory, tools, turns and timings recorded), only its leg is the browser's 16 kHz
PCM (``voice/web_leg.py``) instead of Twilio's 8 kHz mu-law. Pipeline mode only: with
``voice_mode=realtime`` the softphone still talks to the STT → LLM → TTS pipeline.

Who may call: the handshake's ``Origin`` must be this site (else it is refused before it is
accepted), the admin session cookie must be live, and the first message, ``{"event": "start",
"caller": "+15551234567", "csrf": "<the page's CSRF token>"}``, must carry the session's CSRF token.
The caller number is the test number the owner picked: memory is keyed by it as for a phone call
from it, and ``memory forget`` deletes it the same way. The call is stored with channel ``web``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from loguru import logger

from phone_agent.admin import auth
from phone_agent.api.media_stream import close_failed_call
from phone_agent.config import Settings, e164
from phone_agent.ops.logging import bind_call
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.calls import open_web_call
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import AuditEntry
from phone_agent.voice.pipeline import run_call
from phone_agent.voice.readiness import voice_path_problems
from phone_agent.voice.stream import StreamStart
from phone_agent.voice.web_leg import WEB_SAMPLE_RATE

router = APIRouter(tags=["admin"])

WEB_CALL_PATH = "/admin/web-call"
START_TIMEOUT_SECS = 10.0
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
MAX_START_BYTES = 2048


class CallRefused(Exception):
    """The softphone call cannot start (the message is shown on the page; it holds no secret)."""

    def __init__(self, message: str, code: int = POLICY_VIOLATION) -> None:
        super().__init__(message)
        self.code = code


def same_origin(websocket: WebSocket) -> bool:
    """True when the handshake comes from a page of this site (a browser always sends ``Origin``)."""
    origin = websocket.headers.get("origin", "")
    host = websocket.headers.get("host", "")
    return bool(origin and host) and urlsplit(origin).netloc.lower() == host.lower()


def pipeline_settings(settings: Settings) -> Settings:
    """The settings as the softphone uses them: pipeline mode, whatever ``voice_mode`` says."""
    if settings.voice_mode == "pipeline":
        return settings
    return settings.with_overrides({"voice_mode": "pipeline"})


@router.websocket(WEB_CALL_PATH)
async def web_call(websocket: WebSocket) -> None:
    """One softphone call from the admin page."""
    runtime: Runtime = websocket.app.state.runtime
    if not same_origin(websocket):
        logger.warning("softphone: refused a handshake from origin {!r}", websocket.headers.get("origin"))
        await websocket.close(code=POLICY_VIOLATION)  # before accept: the handshake fails (403)
        return
    await websocket.accept()
    async with runtime.use() as services:
        try:
            admin, caller = await _authorise(websocket, services)
            problems = voice_path_problems(pipeline_settings(services.settings))
            if problems:
                raise CallRefused("The agent cannot talk yet: " + "; ".join(problems) + ".")
            full = runtime.load.full_reason()
            if full:
                message = f"The agent takes no new call now: {full}. Try again shortly."
                raise CallRefused(message, TRY_AGAIN_LATER)
        except CallRefused as exc:
            await _refuse(websocket, str(exc), exc.code)
            return
        except WebSocketDisconnect:
            return
        call_sid = f"WEB{uuid.uuid4().hex}"
        start = StreamStart(
            stream_sid=f"MZ{uuid.uuid4().hex}", call_sid=call_sid, account_sid=None, caller=caller
        )
        with bind_call(call_sid), runtime.load.call():
            await open_web_call(
                services.sessions, call_sid=call_sid, caller=caller, instance_id=runtime.instance_id
            )
            async with transaction(services.sessions) as session:
                session.add(AuditEntry(actor=admin.actor, action="softphone.call", target=call_sid))
            logger.info("softphone call started by {} as {}", admin.actor, caller)
            await websocket.send_text(
                json.dumps({"event": "started", "call_sid": call_sid, "sample_rate": WEB_SAMPLE_RATE})
            )
            try:
                await run_call(websocket, runtime, services, start, channel="web")
            except Exception:  # the socket ends either way; the process must not
                logger.exception("softphone call failed")
                await close_failed_call(services.sessions, call_sid)


async def _authorise(websocket: WebSocket, services: Services) -> tuple[auth.Admin, str]:
    """The admin of the session and the test caller's number, from the cookie and the start message."""
    admin = await auth.session_for(services, websocket)
    if admin is None:
        raise CallRefused("Your admin session has ended: log in again.")
    try:
        received = await asyncio.wait_for(websocket.receive(), timeout=START_TIMEOUT_SECS)
    except TimeoutError as exc:
        raise CallRefused("No start message in time.") from exc
    if received["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(received.get("code", 1000))
    text = received.get("text") or ""
    try:
        message = json.loads(text) if len(text) <= MAX_START_BYTES else None
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("event") != "start":
        raise CallRefused('The first message must be {"event": "start", ...}.')
    given = message.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), admin.csrf_token.encode()):
        raise CallRefused("Missing or wrong CSRF token; reload the page.")
    number = message.get("caller")
    try:
        caller = e164(number if isinstance(number, str) else "", services.settings.default_country)
    except ValueError as exc:
        raise CallRefused(f"Test caller number: {exc}.") from exc
    return admin, caller


async def _refuse(websocket: WebSocket, message: str, code: int) -> None:
    logger.warning("softphone call refused: {}", message)
    try:
        await websocket.send_text(json.dumps({"event": "error", "message": message}))
        await websocket.close(code=code)
    except (WebSocketDisconnect, RuntimeError):  # the page went away first
        pass
