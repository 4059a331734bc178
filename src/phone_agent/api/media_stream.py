"""``/media-stream``: the Twilio Media Stream websocket. Checks the stream token, then runs the call.

A missing, forged or expired token, a token for another call, a second stream for a call that
already has one, or a stream for a call that has ended closes the socket with 1008 (policy
violation) before any pipeline is built: the stream claims its call in the shared database
(``storage.streams``), so this holds across voice-bridge processes. Nothing a client sends before
``start`` produces more than a counted warning. The call takes the process's current ``Services``
once and keeps them (and the settings they were built from) to its end.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.api.phone import BUSY_APOLOGY
from phone_agent.errors import PhoneAgentError
from phone_agent.ops import metrics
from phone_agent.ops.logging import bind_call
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.calls import finish_call, set_end_reason
from phone_agent.storage.streams import claim_stream
from phone_agent.telephony.fallback import fallback_twiml, resolved_fallback_action
from phone_agent.telephony.recordings import start_call_recording
from phone_agent.telephony.stream_token import InvalidStreamToken, verify_stream_token
from phone_agent.voice.pipeline import run_call
from phone_agent.voice.realtime import run_realtime_call
from phone_agent.voice.stream import StreamRefused, read_start
from phone_agent.voice.stream_limits import StreamLimits

router = APIRouter(tags=["voice"])

START_TIMEOUT_SECS = 10.0
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


@router.websocket("/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    """One Twilio Media Stream = one call."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    async with runtime.use() as services:
        try:
            limits = StreamLimits()
            start = await asyncio.wait_for(read_start(websocket, limits), timeout=START_TIMEOUT_SECS)
            grant = verify_stream_token(services.signing_key, start.parameters.get("token"))
            if grant.call_sid != start.call_sid:
                raise StreamRefused("stream token was issued for another call")
            refused = await claim_stream(
                services.sessions, call_sid=start.call_sid, instance_id=runtime.instance_id
            )
            if refused:
                raise StreamRefused(refused)
        except (StreamRefused, InvalidStreamToken, TimeoutError) as exc:
            reason = str(exc) or "no start message in time"
            logger.warning("media stream refused: {}", reason)
            await websocket.close(code=POLICY_VIOLATION)
            return
        except WebSocketDisconnect:
            logger.info("media stream closed before it started")
            return
        except SQLAlchemyError as exc:  # the database is away: no call can be taken
            logger.error("media stream refused: database error {}", type(exc).__name__)
            await websocket.close(code=INTERNAL_ERROR)
            return
        start.caller = grant.caller  # the signed number, normalised at /phone/incoming
        with bind_call(start.call_sid):
            full = runtime.load.full_reason(exclude=start.call_sid)  # its own reservation is no rival
            if full and await hand_over_busy_call(services, start.call_sid, full):
                runtime.load.release(start.call_sid)
                await websocket.close()
                return
            logger.info("media stream started: stream {}", start.stream_sid)
            if services.settings.recording_enabled:  # in the background: the greeting does not wait
                runtime.spawn_with(
                    services,
                    start_call_recording(
                        services.control, services.sessions, services.settings, start.call_sid
                    ),
                    name=f"record-{start.call_sid}",
                )
            with runtime.load.call(start.call_sid):
                try:
                    # an outbound call waits for the answering-machine verdict: pipeline mode does that
                    realtime = services.settings.voice_mode == "realtime" and start.direction != "outbound"
                    await (run_realtime_call if realtime else run_call)(websocket, runtime, services, start)
                except Exception:  # the socket ends either way; the process must not
                    logger.exception("call failed")
                    await close_failed_call(services.sessions, start.call_sid)


async def hand_over_busy_call(services: Services, call_sid: str, reason: str) -> bool:
    """This process is full: redirect the call to the fallback action (True), or, when Twilio cannot
    be reached to do so, keep the call (False: a slower answer beats none)."""
    action = resolved_fallback_action(services.settings)
    try:
        twiml = fallback_twiml(services.settings, apology=BUSY_APOLOGY, reason=f"all lines busy ({reason})")
        await services.control.update_twiml(call_sid, twiml)
    except PhoneAgentError as exc:
        logger.error("{}, and the call cannot be handed over ({}): taking it anyway", reason, exc)
        return False
    logger.warning("call handed over ({}): {}", action, reason)
    metrics.call_refused("overflow")
    await set_end_reason(services.sessions, call_sid=call_sid, end_reason=f"overflow → {action}")
    return True


async def close_failed_call(sessions: async_sessionmaker[AsyncSession], call_sid: str) -> None:
    """Close (and release) a call whose pipeline failed; a no-op when it got to close its records."""
    try:
        await finish_call(
            sessions, call_sid=call_sid, status="completed", end_reason="agent_error", release=True
        )
    except SQLAlchemyError as exc:  # the heartbeat's recovery closes it once this process is gone
        logger.warning("could not close the failed call: {}", type(exc).__name__)
