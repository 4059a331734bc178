"""Twilio voice webhooks: ``POST /phone/incoming`` answers with a Media Stream, ``POST /phone/status``
records how the call ended, ``POST /phone/recording-status`` what became of its recording. All refuse
unsigned or forged requests with 403.

Routing rules on time and caller run first (``brain.routing.incoming``): one that rejects,
transfers, takes a voicemail or hangs up answers with its TwiML and no stream is opened.

One CallSid gets one stream token: a retried ``/phone/incoming`` (Twilio retries a webhook that
timed out or failed) is answered with the same TwiML and the same token; once the call streams or
has ended, a repeat (a replayed request) gets a hang-up and no token."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from loguru import logger

from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.brain.routing.incoming import route_incoming
from phone_agent.ops import metrics
from phone_agent.ops.logging import bind_call
from phone_agent.runtime import Runtime
from phone_agent.services import Services
from phone_agent.storage.calls import FINAL_STATUSES, finish_call, set_end_reason
from phone_agent.storage.phones import normalise_optional
from phone_agent.storage.recordings import apply_status
from phone_agent.storage.reviews import awaits_review
from phone_agent.storage.streams import register_incoming
from phone_agent.storage.tables import utcnow
from phone_agent.telephony.fallback import fallback_twiml, resolved_fallback_action
from phone_agent.telephony.recordings import delete_orphaned_recordings, recording_update
from phone_agent.telephony.signature import request_base_url, verified_twilio_form
from phone_agent.telephony.stream_token import issue_stream_token
from phone_agent.telephony.twiml import connect_stream, hang_up
from phone_agent.voice.readiness import voice_path_problems

router = APIRouter(prefix="/phone", tags=["telephony"])

TWIML = "application/xml"
NOT_READY_APOLOGY = "Thanks for calling. Our assistant can't take your call right now."
BUSY_APOLOGY = "Thanks for calling. All our lines are busy right now."
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
        routed = None
        if not form.get("Direction", "").startswith("outbound"):  # rules are for calls coming in
            routed = await route_incoming(
                settings,
                services.sessions,
                services.control,
                call_sid=call_sid,
                caller=registered.caller,
                now=utcnow(),
                repeated=registered.repeated,
            )
        if routed is not None:  # a rule answered the call: no stream, no provider
            return Response(routed, media_type=TWIML)
        problems = voice_path_problems(settings)
        if problems:  # the stream could only end in silence: apologise and hand the caller on now
            return await not_configured_answer(runtime, services, call_sid, problems)
        full = runtime.load.full_reason(exclude=call_sid) if runtime.takes_calls else None
        if full:  # this process would take the stream: running calls keep real time, this one is served
            return await overflow_answer(services, call_sid, full)
        if runtime.takes_calls:
            runtime.load.reserve(call_sid)  # counted from now, not from when its stream opens
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


async def not_configured_answer(
    runtime: Runtime, services: Services, call_sid: str, problems: list[str]
) -> Response:
    """The fallback action instead of a stream; the owner sees why (provider health, the call row)."""
    settings = services.settings
    logger.error("call not answered by the agent: {}", "; ".join(problems))
    metrics.call_refused("not_configured")
    for problem in problems:
        runtime.providers.record("configuration", ok=False, detail=problem)
    action = resolved_fallback_action(settings)
    if call_sid:
        await set_end_reason(services.sessions, call_sid=call_sid, end_reason=f"not_configured → {action}")
    twiml = fallback_twiml(settings, apology=NOT_READY_APOLOGY, reason="the agent is not configured")
    return Response(twiml, media_type=TWIML)


async def overflow_answer(services: Services, call_sid: str, reason: str) -> Response:
    """The fallback action for a call this process is too busy to take."""
    logger.warning("call not taken: {}", reason)
    metrics.call_refused("overflow")
    action = resolved_fallback_action(services.settings)
    if call_sid:
        await set_end_reason(services.sessions, call_sid=call_sid, end_reason=f"overflow → {action}")
    twiml = fallback_twiml(services.settings, apology=BUSY_APOLOGY, reason=f"all lines busy ({reason})")
    return Response(twiml, media_type=TWIML)


@router.post("/status")
async def call_status(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """Twilio's status callback: a final status closes the call's record (and reviews a call that
    never reached the agent: missed, busy, hung up while ringing)."""
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
            if await awaits_review(services.sessions, call_sid):
                runtime.spawn_with(services, services.learn_after_call(call_sid), name=f"review-{call_sid}")
    return Response(status_code=204)


@router.post("/recording-status")
async def recording_status(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """Twilio's recording status callback: the recording's status, media URL and duration are stored.

    A recording of a call that was deleted meanwhile (the caller's data was forgotten) is deleted at
    Twilio at once instead.
    """
    form = await verified_twilio_form(request, services.settings)
    update = recording_update(form)
    with bind_call(form.get("CallSid") or "-"):
        if update is None:
            logger.warning("recording status callback without RecordingSid/CallSid: ignored")
            return Response(status_code=204)
        logger.info("recording {} {}", update.recording_sid, update.status)
        if not await apply_status(services.sessions, update):
            logger.info("recording of a deleted call: deleting it at Twilio")
            runtime.spawn_with(
                services,
                delete_orphaned_recordings(services.control, services.sessions),
                name=f"delete-recording-{update.recording_sid}",
            )
    return Response(status_code=204)
