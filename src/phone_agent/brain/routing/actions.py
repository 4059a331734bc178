"""What a rule's action does on the wire: the TwiML of the terminal actions, the SMS of ``sms``.

The same TwiML serves ``/phone/incoming`` (the answer to Twilio's webhook: no AI, no provider cost)
and a live call (``CallControl.update_twiml`` redirects it; the agent has said its line first, so
the TwiML then starts without a greeting of its own).
"""

from __future__ import annotations

from loguru import logger
from twilio.twiml.voice_response import VoiceResponse

from phone_agent.brain.routing.rules import Rule
from phone_agent.config import Settings
from phone_agent.errors import PhoneAgentError
from phone_agent.telephony.control import CallControl, append_voicemail, transfer_twiml


def transfer_reason(rule: Rule, detail: str) -> str:
    """The one line the person hears before the caller is connected (the whisper)."""
    return f"{rule.name}: {detail}"[:300]


def spoken_line(settings: Settings, rule: Rule) -> str:
    """What the agent says in a live call before the action takes the call on ('' for none)."""
    action = rule.action
    if action.type == "transfer":
        return f"Let me connect you with {action.destination}."
    if action.type == "voicemail":
        return "I'll put you through to our voicemail."
    if action.type == "hang_up":
        return action.text
    return ""


def action_twiml(settings: Settings, rule: Rule, *, reason: str, in_call: bool = False) -> str:
    """TwiML of a terminal action (``in_call``: the agent already said ``spoken_line``)."""
    action = rule.action
    if action.type == "transfer":
        number = settings.destinations()[action.destination]
        return transfer_twiml(settings, reason, to=number)
    response = VoiceResponse()
    if action.type == "reject":
        response.reject(reason="rejected")
    elif action.type == "voicemail":
        append_voicemail(response, settings)
    else:  # hang_up: say the message (unless the agent just did), then end the call
        if not in_call:
            response.say(action.text)
        response.hangup()
    return str(response)


async def send_rule_sms(
    settings: Settings, control: CallControl, rule: Rule, caller: str | None
) -> str | None:
    """Send the ``sms`` action's text (to the caller, or to the owner naming the caller); returns the
    message SID, or None when there is nobody to send to or Twilio refused (logged, never raised)."""
    action = rule.action
    if action.to == "owner":
        to, body = settings.owner_sms_number, f"{action.text} (caller {caller or 'withheld'})"
    else:
        to, body = caller, action.text
    if not to:
        logger.warning("routing rule {!r}: no number to send its SMS to", rule.name)
        return None
    try:
        return await control.send_sms(to, body[:1600])
    except PhoneAgentError as exc:
        logger.warning("routing rule {!r}: SMS not sent: {}", rule.name, exc)
        return None
