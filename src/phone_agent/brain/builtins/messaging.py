"""``send_sms`` and ``take_message``: texts through Twilio, messages stored for the business."""

from __future__ import annotations

from pydantic import BaseModel, Field

from phone_agent.brain.builtins._common import db
from phone_agent.brain.tools import Tool, ToolContext
from phone_agent.errors import PhoneAgentError, ToolError
from phone_agent.storage.callers import caller_id
from phone_agent.storage.tables import Message

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
    """Store the message and text it to the owner when ``owner_sms_number`` is set."""
    phone = args.callback_number or ctx.caller_phone
    name = args.name or ctx.caller_name
    sms_sid: str | None = None
    sms_error: str | None = None
    owner = ctx.settings.owner_sms_number
    if owner and ctx.control is not None:
        text = f"Message for {ctx.settings.business_name} from {name or 'a caller'}"
        text += f" ({phone})" if phone else ""
        text += f": {args.message}"
        try:
            sms_sid = await ctx.control.send_sms(owner, text[:SMS_LIMIT])
        except PhoneAgentError as exc:  # the message is still kept; the owner sees it on the admin page
            sms_error = str(exc)
    async with db(ctx) as session:
        row = Message(
            caller_id=await caller_id(session, ctx.caller_phone),
            call_id=ctx.call_id,
            kind="message",
            phone=phone,
            name=name,
            body=args.message,
            sms_sid=sms_sid,
            status="sent" if sms_sid else "new",
        )
        session.add(row)
        await session.flush()
    result: dict[str, object] = {"message_id": row.id, "forwarded_by_sms": sms_sid is not None}
    if sms_error:
        result["sms_error"] = sms_error
    return result


SEND_SMS = Tool(
    name="send_sms",
    description="Send a text message (e.g. an address or a confirmation) to the caller's phone.",
    args_model=SendSmsArgs,
    handler=send_sms,
)

TAKE_MESSAGE = Tool(
    name="take_message",
    description="Take a message for the business owner; it is saved and forwarded to them by SMS.",
    args_model=TakeMessageArgs,
    handler=take_message,
)
