"""The fallback action: what a caller gets when the agent cannot talk to them.

Every failure path ends here rather than in silence: a provider ladder that ran out in the middle
of a call (``CallControl.update_twiml`` with this TwiML), a ``/phone/incoming`` that knows the voice
path cannot work, a process that is full. The caller hears one short apology in Twilio's own voice,
then ``fallback_action``: a transfer to ``handoff_number`` (no answer → voicemail, as any transfer),
a voicemail (``<Record>`` with transcription; stored as a message and texted to the owner by the
voicemail webhook), or a hang-up.
"""

from __future__ import annotations

from typing import Literal

from twilio.twiml.voice_response import Dial, VoiceResponse

from phone_agent.config import Settings
from phone_agent.telephony.control import (
    TRANSFER_DONE_PATH,
    TRANSFER_RING_SECONDS,
    WHISPER_PATH,
    append_voicemail,
    public_url_for,
)

FallbackAction = Literal["transfer", "voicemail", "hang_up"]
DEFAULT_APOLOGY = "Sorry, I'm having trouble on my end right now."


def resolved_fallback_action(settings: Settings) -> FallbackAction:
    """What ``fallback_action`` means with these settings (``auto`` and a missing number resolved)."""
    action = settings.fallback_action
    if action == "auto":
        return "transfer" if settings.handoff_number else "voicemail"
    if action == "transfer" and not settings.handoff_number:
        return "voicemail"  # nobody to transfer to: a message is the next best thing
    return action


def fallback_twiml(settings: Settings, *, apology: str = DEFAULT_APOLOGY, reason: str = "") -> str:
    """TwiML: ``apology`` in Twilio's voice, then the fallback action.

    Args:
        settings: the call's settings (handoff number, business name, public URL for the webhooks).
        apology: the one sentence said first (empty: none).
        reason: why (whispered to the human on a transfer; never said to the caller).
    """
    response = VoiceResponse()
    if apology:
        response.say(apology)
    action = resolved_fallback_action(settings)
    if action == "transfer":
        response.say("Let me connect you with someone who can help.")
        dial = Dial(
            action=public_url_for(settings, TRANSFER_DONE_PATH),
            timeout=TRANSFER_RING_SECONDS,
            caller_id=settings.twilio_phone_number,
        )
        whisper = public_url_for(settings, WHISPER_PATH, reason=(reason or "the agent could not help")[:300])
        dial.number(settings.handoff_number, url=whisper)
        response.append(dial)
    elif action == "voicemail":
        append_voicemail(response, settings)
    else:
        response.say(f"Please call {settings.business_name} again a little later. Goodbye.")
        response.hangup()
    return str(response)
