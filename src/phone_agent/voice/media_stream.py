"""``/media-stream``: the Twilio Media Stream websocket. Checks the stream token, then runs the call.

Twilio opens the socket, sends ``connected`` and ``start`` (with our ``<Parameter>``s as
``customParameters``). A missing, forged or expired token, or a token for another call, closes the
socket with 1008 (policy violation) before any pipeline is built.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from loguru import logger

from phone_agent.ops.logging import bind_call
from phone_agent.runtime import Runtime
from phone_agent.telephony.stream_token import InvalidStreamToken, signing_key, verify_stream_token
from phone_agent.voice.pipeline import StreamStart, run_call
from phone_agent.voice.realtime import run_realtime_call

router = APIRouter(tags=["voice"])

START_TIMEOUT_SECS = 10.0
MAX_MESSAGES_BEFORE_START = 20
POLICY_VIOLATION = 1008


class StreamRefused(Exception):
    """The stream cannot become a call (the message says why; it is logged, never sent)."""


async def read_start(websocket: WebSocket) -> StreamStart:
    """Read messages until Twilio's ``start``; malformed ones are logged and skipped."""
    for _ in range(MAX_MESSAGES_BEFORE_START):
        raw = await websocket.receive_text()
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("media stream: ignoring a message that is not JSON before start")
            continue
        if not isinstance(message, dict):
            continue
        if message.get("event") == "start":
            start = message.get("start")
            if not isinstance(start, dict):
                raise StreamRefused("start message without a start object")
            stream_sid = start.get("streamSid") or message.get("streamSid")
            call_sid = start.get("callSid")
            if not isinstance(stream_sid, str) or not isinstance(call_sid, str):
                raise StreamRefused("start message without streamSid/callSid")
            params = start.get("customParameters")
            params = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
            account = start.get("accountSid")
            return StreamStart(
                stream_sid=stream_sid,
                call_sid=call_sid,
                account_sid=account if isinstance(account, str) else None,
                parameters=params,
            )
        if message.get("event") not in ("connected",):
            logger.warning("media stream: ignoring {!r} before start", str(message.get("event"))[:40])
    raise StreamRefused("no start message")


@router.websocket("/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    """One Twilio Media Stream = one call."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        start = await asyncio.wait_for(read_start(websocket), timeout=START_TIMEOUT_SECS)
        grant = verify_stream_token(signing_key(runtime.settings), start.parameters.get("token"))
        if grant.call_sid != start.call_sid:
            raise StreamRefused("stream token was issued for another call")
    except (StreamRefused, InvalidStreamToken, TimeoutError) as exc:
        reason = str(exc) or "no start message in time"
        logger.warning("media stream refused: {}", reason)
        await websocket.close(code=POLICY_VIOLATION)
        return
    except WebSocketDisconnect:
        logger.info("media stream closed before it started")
        return
    if grant.caller:  # the signed number wins over the plain parameter
        start.parameters["caller"] = grant.caller
    with bind_call(start.call_sid):
        logger.info("media stream started: stream {}", start.stream_sid)
        try:
            realtime = runtime.settings.voice_mode == "realtime"
            await (run_realtime_call if realtime else run_call)(websocket, runtime, start)
        except Exception:  # the socket ends either way; the process must not
            logger.exception("call failed")
