"""What the agent does for a caller after the call: a text when the call was missed or abandoned.

Off unless ``text_caller_after_missed_call``. Only inbound phone calls whose review says
``abandoned`` and whose caller number is known get one text, once (the text is kept as an ``sms``
message of the call, which is how a second run knows it was sent).
"""

from __future__ import annotations

from loguru import logger
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from phone_agent.config import Settings
from phone_agent.errors import PhoneAgentError
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Call, Message
from phone_agent.telephony.control import CallControl


async def text_after_missed_call(
    *, settings: Settings, sessions: async_sessionmaker[AsyncSession], control: CallControl, call_sid: str
) -> str | None:
    """Text the caller of an abandoned call (when the setting is on); the SMS SID, or None."""
    if not settings.text_caller_after_missed_call:
        return None
    async with sessions() as session:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None or call.outcome != "abandoned" or call.direction != "inbound" or not call.from_number:
            return None
        sent = await session.scalar(
            select(func.count()).where(Message.call_id == call.id, Message.kind == "sms")
        )
        if sent:
            return None
        call_id, caller_id, phone = call.id, call.caller_id, call.from_number
    body = settings.missed_call_text.replace("{business_name}", settings.business_name)
    try:
        sid = await control.send_sms(phone, body)
    except PhoneAgentError as exc:  # the owner still sees the abandoned call in the log
        logger.warning("text after missed call {} failed: {}", call_sid, exc)
        return None
    async with transaction(sessions) as session:
        session.add(
            Message(
                caller_id=caller_id,
                call_id=call_id,
                kind="sms",
                phone=phone,
                body=body,
                sms_sid=sid,
                status="sent",
            )
        )
    logger.info("texted the caller after missed call {}", call_sid)
    return sid
