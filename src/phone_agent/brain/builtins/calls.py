"""``transfer_call`` and ``end_call``: act on the live call once the agent has finished speaking."""

from __future__ import annotations

from pydantic import BaseModel, Field

from phone_agent.brain.tools import Tool, ToolContext
from phone_agent.errors import ToolError


class TransferCallArgs(BaseModel):
    """Arguments of transfer_call."""

    reason: str = Field(description="Why the caller wants a person, in a few words (told to the person).")
    destination: str | None = Field(
        None, description="The department to transfer to, when the instructions list departments."
    )


def destination_number(ctx: ToolContext, name: str | None) -> str | None:
    """The number of a ``transfer_destinations`` department (None: ``handoff_number``)."""
    if not name or not name.strip():
        return None
    known = ctx.settings.destinations()
    number = next((n for d, n in known.items() if d.lower() == name.strip().lower()), None)
    if number is None:
        listed = ", ".join(known) or "none"
        raise ToolError(f"There is no department {name!r}; the departments are: {listed}.")
    return number


async def transfer_call(ctx: ToolContext, args: TransferCallArgs) -> dict[str, object]:
    """Hand the call to a department or ``handoff_number`` after the agent's sentence has played."""
    if ctx.call_sid is None or ctx.channel != "phone":
        raise ToolError("This is not a phone call, so it cannot be transferred; offer to take a message.")
    number = destination_number(ctx, args.destination)
    if number is None and not ctx.settings.handoff_number:
        raise ToolError("Nobody is available to take a transfer; offer to take a message instead.")
    if ctx.control is None:
        raise ToolError("Transfers are not set up here; offer to take a message instead.")
    control, call_sid = ctx.control, ctx.call_sid

    async def transfer_now() -> None:
        # Mark it first: Twilio ends the media stream as soon as the call is redirected.
        ctx.ended, ctx.end_reason = True, "transferred"
        if ctx.before_transfer is not None:
            await ctx.before_transfer()
        await control.transfer(call_sid, args.reason, to=number)

    ctx.after_speech(transfer_now, "transfer_call")
    return {"status": "transferring", "say": "Tell the caller you are connecting them now, in one sentence."}


class EndCallArgs(BaseModel):
    """Arguments of end_call."""

    reason: str | None = Field(None, description="Why the call ends, e.g. 'caller said goodbye'.")


async def end_call(ctx: ToolContext, args: EndCallArgs) -> dict[str, object]:
    """End the conversation: on a call (phone or web), hang up once the goodbye has finished playing."""
    reason = args.reason or "agent ended the call"
    if ctx.channel in ("phone", "web") and ctx.on_hang_up is not None:
        ctx.after_speech(ctx.on_hang_up, "end_call")
    elif ctx.channel == "phone" and ctx.call_sid and ctx.control is not None:
        control, call_sid = ctx.control, ctx.call_sid

        async def hang_up() -> None:
            await control.hang_up(call_sid)

        ctx.after_speech(hang_up, "end_call")
    ctx.ended, ctx.end_reason = True, reason
    return {"status": "ending", "say": "Say a short goodbye; the call ends after it."}


TRANSFER_CALL = Tool(
    name="transfer_call",
    description="Transfer the caller to a human colleague (when they ask for a person or you cannot help).",
    args_model=TransferCallArgs,
    handler=transfer_call,
)

END_CALL = Tool(
    name="end_call",
    description="End the call after saying goodbye, when the caller is done.",
    args_model=EndCallArgs,
    handler=end_call,
)
