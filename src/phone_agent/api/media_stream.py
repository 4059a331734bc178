"""``/media-stream``: the Twilio Media Stream websocket. Checks the stream token, then runs the call.

A missing, forged or expired token, or a token for another call, closes the socket with 1008
(policy violation) before any pipeline is built. The call takes the process's current
``Services`` once and keeps them (and the settings they were built from) to its end.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from loguru import logger

from phone_agent.ops.logging import bind_call
from phone_agent.runtime import Runtime
from phone_agent.telephony.stream_token import InvalidStreamToken, verify_stream_token
from phone_agent.voice.pipeline import run_call
from phone_agent.voice.realtime import run_realtime_call
from phone_agent.voice.stream import StreamRefused, read_start

router = APIRouter(tags=["voice"])

START_TIMEOUT_SECS = 10.0
POLICY_VIOLATION = 1008


@router.websocket("/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    """One Twilio Media Stream = one call."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    async with runtime.use() as services:
        try:
            start = await asyncio.wait_for(read_start(websocket), timeout=START_TIMEOUT_SECS)
            grant = verify_stream_token(services.signing_key, start.parameters.get("token"))
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
        start.caller = grant.caller  # the signed number, normalised at /phone/incoming
        with bind_call(start.call_sid):
            logger.info("media stream started: stream {}", start.stream_sid)
            try:
                realtime = services.settings.voice_mode == "realtime"
                await (run_realtime_call if realtime else run_call)(websocket, runtime, services, start)
            except Exception:  # the socket ends either way; the process must not
                logger.exception("call failed")
