"""Webhooks of a transfer to a human (see ``control.transfer_twiml``); all Twilio-signed.

``POST /phone/transfer/whisper?reason=…`` - played to the human before connecting: who and why.
``POST /phone/transfer/done`` - the dial ended: hang up if they talked, else record a voicemail.
``POST /phone/transfer/voicemail`` - the voicemail was recorded: store it as a message, text the
owner (``owner_sms_number``) and hang up.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from loguru import logger
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from phone_agent.api.deps import ServicesDep
from phone_agent.errors import PhoneAgentError
from phone_agent.ops.logging import bind_call
from phone_agent.storage.callers import caller_id
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_optional
from phone_agent.storage.tables import Call, Message
from phone_agent.telephony.control import (
    TRANSFER_DONE_PATH,
    VOICEMAIL_PATH,
    WHISPER_PATH,
    transfer_done_twiml,
    whisper_twiml,
)
from phone_agent.telephony.signature import verified_twilio_form

router = APIRouter(tags=["telephony"])
TWIML = "application/xml"


@router.post(WHISPER_PATH)
async def transfer_whisper(request: Request, services: ServicesDep, reason: str = "") -> Response:
    """What the human hears on answering, before the caller is connected."""
    await verified_twilio_form(request, services.settings)
    return Response(whisper_twiml(services.settings, reason), media_type=TWIML)


@router.post(TRANSFER_DONE_PATH)
async def transfer_done(request: Request, services: ServicesDep) -> Response:
    """After the dial: hang up when the human answered, otherwise take a voicemail."""
    form = await verified_twilio_form(request, services.settings)
    status = form.get("DialCallStatus", "")
    with bind_call(form.get("CallSid") or "-"):
        logger.info("transfer ended: {}", status or "unknown")
    return Response(transfer_done_twiml(services.settings, status), media_type=TWIML)


@router.post(VOICEMAIL_PATH)
async def transfer_voicemail(request: Request, services: ServicesDep) -> Response:
    """Keep the voicemail as a message for the business and tell the owner by SMS."""
    settings = services.settings
    form = await verified_twilio_form(request, settings)
    call_sid, phone = form.get("CallSid", ""), normalise_optional(form.get("From"))
    recording = form.get("RecordingUrl", "")
    with bind_call(call_sid or "-"):
        if recording:
            body = f"Voicemail ({form.get('RecordingDuration', '?')} s): {recording}"
            sms_sid = None
            if settings.owner_sms_number:
                try:
                    sms_sid = await services.control.send_sms(
                        settings.owner_sms_number,
                        f"{settings.business_name}: {body} from {phone or 'unknown'}",
                    )
                except PhoneAgentError as exc:
                    logger.warning("voicemail SMS to the owner failed: {}", exc)
            async with transaction(services.sessions) as session:
                call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
                session.add(
                    Message(
                        caller_id=await caller_id(session, phone),
                        call_id=call.id if call is not None else None,
                        kind="voicemail",
                        phone=phone,
                        body=body,
                        sms_sid=sms_sid,
                        status="sent" if sms_sid else "new",
                    )
                )
            logger.info("voicemail stored")
    response = VoiceResponse()
    response.say("Thank you, your message has been passed on. Goodbye.")
    response.hangup()
    return Response(str(response), media_type=TWIML)
