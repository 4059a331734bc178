"""Twilio's webhooks for calls the agent placed (``telephony.outbound``); every one signature-checked.

- ``POST /phone/outbound/answer?ref=…``: the callee picked up: a Media Stream to the same pipeline
  as an inbound call (``direction=outbound``; the token carries the callee's number, whose memory
  the agent uses). The pipeline stays quiet until the answering-machine verdict.
- ``POST /phone/outbound/status?ref=…``: each status (initiated, ringing, in-progress, busy,
  no-answer, failed, canceled, completed) is stored on the call; a final one closes it.
- ``POST /phone/outbound/amd?ref=…``: the verdict (``AnsweredBy``) is stored and handed to the
  process holding the call (control bus): a person hears the outbound greeting, a machine the
  voicemail message, after the beep. A machine on a call no stream holds gets the voicemail in
  Twilio's voice (a call update with ``<Say>``), so it is never left without a message.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request, Response
from loguru import logger

from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.api.phone import TWIML, media_stream_url
from phone_agent.brain.persona import voicemail_for
from phone_agent.errors import PhoneAgentError
from phone_agent.ops import metrics
from phone_agent.ops.logging import bind_call
from phone_agent.services import Services
from phone_agent.storage.calls import FINAL_STATUSES, add_turn, call_row, finish_call, set_end_reason
from phone_agent.storage.outbound import (
    attach_call,
    outbound_by_ref,
    outbound_by_sid,
    record_answered_by,
    record_status,
)
from phone_agent.storage.streams import register_incoming
from phone_agent.telephony.outbound import AMD_PATH, ANSWER_PATH, STATUS_PATH, is_machine
from phone_agent.telephony.signature import verified_twilio_form
from phone_agent.telephony.stream_token import issue_stream_token
from phone_agent.telephony.twiml import connect_stream, hang_up, say_and_hang_up
from phone_agent.voice.readiness import voice_path_problems

router = APIRouter(tags=["telephony"])
STREAM_GRACE_SECS = 2.5  # a machine verdict may overtake the stream's opening (Twilio: ~1 s after answer)


@router.post(ANSWER_PATH)
async def outbound_answered(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """The callee answered: connect the call to our media stream (one token per call)."""
    settings = services.settings
    form = await verified_twilio_form(request, settings)
    call_sid, ref = form.get("CallSid", ""), request.query_params.get("ref", "")
    with bind_call(call_sid or "-"):
        outbound = await outbound_by_ref(services.sessions, ref) if ref else None
        if outbound is None or not call_sid:
            logger.warning("outbound answer for an unknown call: hanging up")
            return Response(hang_up(), media_type=TWIML)
        await attach_call(services.sessions, ref=ref, call_sid=call_sid, from_number=form.get("From"))
        registered = await register_incoming(
            services.sessions,
            call_sid=call_sid,
            from_number=form.get("From") or None,
            to_number=outbound.to,
            direction="outbound",
            now=int(time.time()),
            ttl_seconds=settings.stream_token_ttl_seconds,
        )
        if registered.token_expires is None:
            logger.warning("repeated outbound answer for a call that streams already or has ended")
            return Response(hang_up(), media_type=TWIML)
        problems = voice_path_problems(settings)
        full = runtime.load.full_reason(exclude=call_sid) if runtime.takes_calls else None
        if problems or full:  # nobody would talk: end the call rather than leave the callee in silence
            reason = "not_configured" if problems else "overflow"
            logger.error("outbound call not connected: {}", "; ".join(problems) or full)
            metrics.call_refused(reason)
            await set_end_reason(services.sessions, call_sid=call_sid, end_reason=reason)
            return Response(hang_up(), media_type=TWIML)
        if runtime.takes_calls:
            runtime.load.reserve(call_sid)  # counted from now, as an inbound call (ops/load.py)
        token = issue_stream_token(
            services.signing_key, call_sid=call_sid, caller=outbound.to, expires_at=registered.token_expires
        )
        url = media_stream_url(request, settings.voice_bridge_url, settings.public_url)
        logger.info("outbound call answered: media stream to {}", url)
        parameters = {"caller": outbound.to, "call_sid": call_sid, "token": token, "direction": "outbound"}
        return Response(connect_stream(url, parameters), media_type=TWIML)


@router.post(STATUS_PATH)
async def outbound_status(request: Request, services: ServicesDep) -> Response:
    """A status callback: stored on the outbound call; a final status closes the call's record."""
    form = await verified_twilio_form(request, services.settings)
    call_sid, ref, status = (
        form.get("CallSid", ""),
        request.query_params.get("ref", ""),
        form.get("CallStatus", ""),
    )
    with bind_call(call_sid or "-"):
        logger.info("outbound call status {}", status)
        if not (ref and status):
            return Response(status_code=204)
        if call_sid:  # a callback may outrun the create request's answer
            await attach_call(services.sessions, ref=ref, call_sid=call_sid, from_number=form.get("From"))
        view = await record_status(
            services.sessions,
            ref=ref,
            call_sid=call_sid or None,
            status=status,
            sequence=form.get("SequenceNumber"),
            duration=form.get("CallDuration"),
        )
        if view is None:
            logger.warning("status callback for an unknown outbound call")
        elif call_sid and status in FINAL_STATUSES:
            await finish_call(services.sessions, call_sid=call_sid, status=status, end_reason=status)
    return Response(status_code=204)


@router.post(AMD_PATH)
async def outbound_amd(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """The answering-machine verdict: stored, and passed to the pipeline holding the call."""
    form = await verified_twilio_form(request, services.settings)
    call_sid, ref = form.get("CallSid", ""), request.query_params.get("ref", "")
    answered_by = form.get("AnsweredBy", "unknown") or "unknown"
    with bind_call(call_sid or "-"):
        logger.info(
            "outbound call answered by {} (detected in {} ms)",
            answered_by,
            form.get("MachineDetectionDuration"),
        )
        view = await record_answered_by(services.sessions, ref=ref, answered_by=answered_by) if ref else None
        if view is None:
            logger.warning("answering-machine verdict for an unknown outbound call")
        elif call_sid:
            await runtime.bus.send_call_command(call_sid, "answered_by", answered_by=answered_by)
            if is_machine(answered_by) or answered_by == "fax":
                runtime.spawn_with(
                    services, machine_without_stream(services, call_sid, answered_by), name=f"amd-{call_sid}"
                )
    return Response(status_code=204)


async def machine_without_stream(services: Services, call_sid: str, answered_by: str) -> None:
    """A machine answered a call no media stream holds (its stream failed to open, or never will):
    Twilio's own voice leaves the voicemail (a fax is hung up on). A call with a stream is left to
    its pipeline, which speaks the voicemail itself."""
    deadline = time.monotonic() + STREAM_GRACE_SECS  # a stream opening right now takes the call
    while (
        call := await call_row(services.sessions, call_sid)
    ) is not None and call.stream_started_at is None:
        if call.ended_at is not None or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.25)
    if call is None or call.stream_started_at is not None or call.ended_at is not None:
        return
    outbound = await outbound_by_sid(services.sessions, call_sid)
    try:
        if answered_by == "fax" or outbound is None:
            await services.control.hang_up(call_sid)
            await set_end_reason(services.sessions, call_sid=call_sid, end_reason="fax")
            return
        text = voicemail_for(services.settings, outbound.purpose)
        await services.control.update_twiml(call_sid, say_and_hang_up(text))
    except PhoneAgentError as exc:
        logger.error("answering machine on a call without a stream, and Twilio refused the update: {}", exc)
        return
    logger.info("voicemail left with Twilio's voice (no media stream held the call)")
    await set_end_reason(services.sessions, call_sid=call_sid, end_reason="voicemail_left")
    await add_turn(services.sessions, call_id=call.id, role="agent", text=text)
