"""TwiML answers, built with the Twilio SDK."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, VoiceResponse


def connect_stream(stream_url: str, parameters: dict[str, str]) -> str:
    """``<Connect><Stream url=…>`` with one ``<Parameter>`` per entry (a bidirectional Media Stream)."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def say_and_hang_up(text: str) -> str:
    """Speak ``text`` with Twilio's voice and end the call (used when the agent cannot take calls)."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def hang_up() -> str:
    """``<Hangup/>``: end the call without a word (a webhook we will not answer with a stream)."""
    response = VoiceResponse()
    response.hangup()
    return str(response)
