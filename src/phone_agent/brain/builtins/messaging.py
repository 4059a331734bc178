"""``send_sms`` and ``take_message``: texts through Twilio, messages stored for the business."""

from __future__ import annotations

from pydantic import BaseModel, Field

from phone_agent.brain.builtins._common import db
from phone_agent.brain.tools import Tool, ToolContext
from phone_agent.errors import ToolError
from phone_agent.notifications import OwnerEvent, notify_owner
from phone_agent.storage.callers import caller_id
from phone_agent.storage.tables import Message, utcnow

SMS_LIMIT = 1600  # Twilio's longest body


class SendSmsArgs(BaseModel):
    """Arguments of send_sms."""

    body: str = Field(min_length=1, description="The text to send; short and plain.")
    to: str | None = Field(None, description="E.164 number; defaults to the caller's own number.")


async def send_sms(ctx: ToolContext, args: SendSmsArgs) -> dict[str, object]:
    """Text the caller (or a given number) from the business number and keep a record."""
    to = args.to or ctx.caller_phone
    if not to:
        raise ToolError("I don't know which number to text; ask the caller for it.")
    if ctx.control is None:
        raise ToolError("Text messages are not set up here; offer to take a message instead.")
    body = args.body[:SMS_LIMIT]
    sid = await ctx.control.send_sms(to, body)
    async with db(ctx) as session:
        session.add(
            Message(
                caller_id=await caller_id(session, ctx.caller_phone),
                call_id=ctx.call_id,
                kind="sms",
                phone=to,
                body=body,
                sms_sid=sid,
                status="sent",
            )
        )
    return {"sent_to": to, "sms_sid": sid}


class TakeMessageArgs(BaseModel):
    """Arguments of take_message."""

    message: str = Field(min_length=1, description="The message, in the caller's words.")
    name: str | None = Field(None, description="Who the message is from.")
    callback_number: str | None = Field(None, description="Number to call back; defaults to the caller's.")


async def take_message(ctx: ToolContext, args: TakeMessageArgs) -> dict[str, object]:
    """Store the message and send it to the owner (``notify_owner``: SMS and/or e-mail)."""
    phone = args.callback_number or ctx.caller_phone
    name = args.name or ctx.caller_name
    subject = f"Message for {ctx.settings.business_name} from {name or 'a caller'}"
    subject += f" ({phone})" if phone else ""
    event = OwnerEvent(
        kind="message", subject=subject, text=args.message, call_sid=ctx.call_sid, caller=phone
    )
    notified = await notify_owner(ctx, event)
    async with db(ctx) as session:
        row = Message(
            caller_id=await caller_id(session, ctx.caller_phone),
            call_id=ctx.call_id,
            kind="message",
            phone=phone,
            name=name,
            body=args.message,
            sms_sid=notified.sms_sid,
            status="sent" if notified.delivered else "new",
            notified_at=utcnow() if notified.delivered else None,
        )
        session.add(row)
        await session.flush()
    result: dict[str, object] = {
        "message_id": row.id,
        "forwarded_by_sms": notified.sms_sid is not None,
        "forwarded_to_owner": notified.sent,
    }
    if "sms" in notified.failed:
        result["sms_error"] = notified.failed["sms"]
    if "email" in notified.failed:
        result["email_error"] = notified.failed["email"]
    return result


SEND_SMS = Tool(
    name="send_sms",
    description="Send a text message (e.g. an address or a confirmation) to the caller's phone.",
    args_model=SendSmsArgs,
    handler=send_sms,
)

TAKE_MESSAGE = Tool(
    name="take_message",
    description="Take a message for the business owner; it is saved and forwarded to them (SMS or e-mail).",
    args_model=TakeMessageArgs,
    handler=take_message,
)
