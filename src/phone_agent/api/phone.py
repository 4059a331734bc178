"""Twilio voice webhooks: ``POST /phone/incoming`` answers with a Media Stream, ``POST /phone/status``
records how the call ended. Both refuse unsigned or forged requests with 403.

One CallSid gets one stream token: a retried ``/phone/incoming`` (Twilio retries a webhook that
timed out or failed) is answered with the same TwiML and the same token; once the call streams or
has ended, a repeat (a replayed request) gets a hang-up and no token."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from loguru import logger

from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.ops.logging import bind_call
from phone_agent.storage.calls import FINAL_STATUSES, finish_call
from phone_agent.storage.phones import normalise_optional
from phone_agent.storage.streams import register_incoming
from phone_agent.telephony.signature import request_base_url, verified_twilio_form
from phone_agent.telephony.stream_token import issue_stream_token
from phone_agent.telephony.twiml import connect_stream, hang_up

router = APIRouter(prefix="/phone", tags=["telephony"])

TWIML = "application/xml"
MEDIA_STREAM_PATH = "/media-stream"


def media_stream_url(request: Request, voice_bridge_url: str | None, public_url: str | None) -> str:
    """wss URL of the media stream: voice_bridge_url, else PUBLIC_URL (or the forwarded host) + path."""
    if voice_bridge_url:
        base = voice_bridge_url
        return base if base.endswith(MEDIA_STREAM_PATH) else base + MEDIA_STREAM_PATH
    base = public_url or request_base_url(request)
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + MEDIA_STREAM_PATH


@router.post("/incoming")
async def incoming_call(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """A call came in: connect it to our media stream with a short-lived token (one per call)."""
    settings = services.settings
    form = await verified_twilio_form(request, settings)
    call_sid = form.get("CallSid", "")
    caller = normalise_optional(form.get("From"))  # the one form the number travels in from here
    with bind_call(call_sid or "-"):
        if not call_sid:
            logger.warning("incoming call without a CallSid: hanging up")
            return Response(hang_up(), media_type=TWIML)
        registered = await register_incoming(
            services.sessions,
            call_sid=call_sid,
            from_number=caller,
            to_number=form.get("To") or None,
            direction="outbound" if form.get("Direction", "").startswith("outbound") else "inbound",
            now=int(time.time()),
            ttl_seconds=settings.stream_token_ttl_seconds,
        )
        if registered.token_expires is None:
            logger.warning("repeated /phone/incoming for a call that streams already or has ended: no token")
            return Response(hang_up(), media_type=TWIML)
        token = issue_stream_token(
            services.signing_key,
            call_sid=call_sid,
            caller=registered.caller,
            expires_at=registered.token_expires,
        )
        if registered.repeated:
            logger.info("repeated /phone/incoming (a retry): answering with the same stream token")
        else:  # the caller's memory is ready when the stream opens
            runtime.prefetch.start(services.memory, call_sid=call_sid, caller=registered.caller)
        url = media_stream_url(request, settings.voice_bridge_url, settings.public_url)
        logger.info("incoming call answered with a media stream to {}", url)
        parameters = {"caller": registered.caller or "", "call_sid": call_sid, "token": token}
        twiml = connect_stream(url, parameters)
    return Response(twiml, media_type=TWIML)


@router.post("/status")
async def call_status(request: Request, services: ServicesDep) -> Response:
    """Twilio's status callback: a final status closes the call's record."""
    form = await verified_twilio_form(request, services.settings)
    call_sid = form.get("CallSid", "")
    status = form.get("CallStatus", "")
    with bind_call(call_sid or "-"):
        logger.info("call status {}", status)
        if call_sid and status in FINAL_STATUSES:
            await finish_call(
                services.sessions,
                call_sid=call_sid,
                status=status,
                end_reason=status,
                from_number=form.get("From") or None,
                to_number=form.get("To") or None,
            )
    return Response(status_code=204)
