"""Webhooks of a transfer to a human (see ``control.transfer_twiml``); all Twilio-signed.

``POST /phone/transfer/whisper?reason=…`` - played to the human before connecting: who and why.
``POST /phone/transfer/done`` - the dial ended: hang up if they talked, else record a voicemail
(and tell the owner: ``transfer_failed``).
``POST /phone/transfer/voicemail`` - the voicemail was recorded: store it as a message, notify the
owner (``notify_owner``: SMS and/or e-mail) and hang up.
``POST /phone/voicemail/transcript`` - Twilio's transcription of it: added to that message.
Voicemails come from a transfer nobody answered and from the fallback action
(``telephony/fallback.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from loguru import logger
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from phone_agent.api.deps import RuntimeDep, ServicesDep
from phone_agent.notifications import OwnerEvent, notify_owner
from phone_agent.ops.logging import bind_call
from phone_agent.storage.callers import caller_id
from phone_agent.storage.db import transaction
from phone_agent.storage.phones import normalise_optional
from phone_agent.storage.recordings import VOICEMAIL_SOURCE, RecordingUpdate, apply_status
from phone_agent.storage.reviews import set_outcome
from phone_agent.storage.tables import Call, Message, utcnow
from phone_agent.telephony.control import (
    TRANSFER_DONE_PATH,
    VOICEMAIL_PATH,
    VOICEMAIL_TRANSCRIPT_PATH,
    WHISPER_PATH,
    transfer_done_twiml,
    whisper_twiml,
)
from phone_agent.telephony.signature import verified_twilio_form

router = APIRouter(tags=["telephony"])
TRANSFER_ANSWERED = ("completed", "answered")
TWIML = "application/xml"


@router.post(WHISPER_PATH)
async def transfer_whisper(request: Request, services: ServicesDep, reason: str = "") -> Response:
    """What the human hears on answering, before the caller is connected."""
    await verified_twilio_form(request, services.settings)
    return Response(whisper_twiml(services.settings, reason), media_type=TWIML)


@router.post(TRANSFER_DONE_PATH)
async def transfer_done(request: Request, runtime: RuntimeDep, services: ServicesDep) -> Response:
    """After the dial: hang up when the human answered, otherwise take a voicemail."""
    form = await verified_twilio_form(request, services.settings)
    status = form.get("DialCallStatus", "")
    with bind_call(form.get("CallSid") or "-"):
        logger.info("transfer ended: {}", status or "unknown")
        if status not in TRANSFER_ANSWERED:  # the caller is offered the voicemail; the owner hears of it
            caller = normalise_optional(form.get("From"))
            settings = services.settings
            event = OwnerEvent(
                kind="transfer_failed",
                subject=f"{settings.business_name}: missed transfer from {caller or 'an unknown caller'}",
                text=f"A call was transferred to {settings.handoff_number or 'you'} and nobody answered "
                f"({status or 'no status'}). The caller was offered the voicemail.",
                call_sid=form.get("CallSid") or None,
                caller=caller,
            )
            # in the background: Twilio waits for this answer, the caller must not wait for SMTP
            runtime.spawn_with(services, notify_owner(services, event), name="notify-transfer-failed")
    return Response(transfer_done_twiml(services.settings, status), media_type=TWIML)


@router.post(VOICEMAIL_PATH)
async def transfer_voicemail(request: Request, services: ServicesDep) -> Response:
    """Keep the voicemail as a message for the business and notify the owner."""
    settings = services.settings
    form = await verified_twilio_form(request, settings)
    call_sid, phone = form.get("CallSid", ""), normalise_optional(form.get("From"))
    recording = form.get("RecordingUrl", "")
    with bind_call(call_sid or "-"):
        if recording:
            duration = form.get("RecordingDuration", "?")
            body = f"Voicemail ({duration} s): {recording}"
            subject = (
                f"{settings.business_name}: voicemail from {phone or 'an unknown caller'} ({duration} s)"
            )
            event = OwnerEvent(
                kind="voicemail", subject=subject, text=recording, call_sid=call_sid, caller=phone
            )
            notified = await notify_owner(services, event)
            sms_sid = notified.sms_sid
            async with transaction(services.sessions) as session:
                call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
                call_id = call.id if call is not None else None
                session.add(
                    Message(
                        caller_id=await caller_id(session, phone),
                        call_id=call.id if call is not None else None,
                        kind="voicemail",
                        phone=phone,
                        body=body,
                        sms_sid=sms_sid,
                        status="sent" if notified.delivered else "new",
                        notified_at=utcnow() if notified.delivered else None,
                    )
                )
            if call_id is not None:  # a call reviewed before the recording ended is a voicemail now
                await set_outcome(services.sessions, call_id=call_id, outcome="voicemail")
                if form.get("RecordingSid"):  # played in the inbox through the admin's proxy, deleted
                    await apply_status(  # at Twilio with the caller's data like any recording
                        services.sessions,
                        RecordingUpdate(
                            recording_sid=form["RecordingSid"],
                            call_sid=call_sid,
                            status="completed",
                            media_url=recording,
                            duration_seconds=int(duration) if duration.isdigit() else None,
                            source=VOICEMAIL_SOURCE,
                        ),
                    )
            logger.info("voicemail stored")
    response = VoiceResponse()
    response.say("Thank you, your message has been passed on. Goodbye.")
    response.hangup()
    return Response(str(response), media_type=TWIML)


@router.post(VOICEMAIL_TRANSCRIPT_PATH)
async def voicemail_transcript(request: Request, services: ServicesDep) -> Response:
    """Twilio's transcription of a voicemail: added to the voicemail's message (matched by call and
    recording); a message is made when the transcript arrives first."""
    form = await verified_twilio_form(request, services.settings)
    call_sid, recording = form.get("CallSid", ""), form.get("RecordingUrl", "")
    text = form.get("TranscriptionText", "").strip()
    status = form.get("TranscriptionStatus", "")
    with bind_call(call_sid or "-"):
        if status != "completed" or not text:
            logger.info("voicemail transcription {}: nothing to add", status or "unknown")
            return Response(status_code=204)
        async with transaction(services.sessions) as session:
            call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
            query = select(Message).where(Message.kind == "voicemail")
            query = query.where(Message.call_id == call.id) if call is not None else query
            query = query.where(Message.body.contains(recording)) if recording else query
            message = await session.scalar(query.order_by(Message.id.desc()))
            if message is None:
                phone = normalise_optional(form.get("From"))
                message = Message(
                    caller_id=await caller_id(session, phone),
                    call_id=call.id if call is not None else None,
                    kind="voicemail",
                    phone=phone,
                    body=f"Voicemail: {recording}" if recording else "Voicemail",
                    status="new",
                )
                session.add(message)
            message.body = f"{message.body}\nTranscript: {text[:4000]}"
        logger.info("voicemail transcript stored ({} characters)", len(text))
    return Response(status_code=204)
