"""Twilio Media Streams serializer: Pipecat's, made safe for a live call and aware of `mark` echoes.

Pipecat's ``TwilioFrameSerializer`` does the audio conversion (8 kHz mu-law <-> PCM), ``clear`` on
interruption and the REST hang-up. This subclass adds what a phone call needs on top:

- a ``mark`` echoed by Twilio becomes a ``PlayedMarkFrame`` (the heard-tracker reads it);
- ``stop`` becomes a ``CallerHungUpFrame``;
- malformed or unknown messages are logged and ignored: the transport's receive loop dies on the
  first exception a serializer raises, which would end the call.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from loguru import logger
from pipecat.audio.utils import ulaw_to_pcm
from pipecat.frames.frames import Frame, InputAudioRawFrame, SystemFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

KNOWN_EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop"}


@dataclass
class PlayedMarkFrame(SystemFrame):
    """Twilio played every byte queued before the mark named ``mark``."""

    mark: str = ""


@dataclass
class CallerHungUpFrame(SystemFrame):
    """Twilio sent ``stop``: the caller hung up (or the call was redirected)."""


class TwilioMediaSerializer(TwilioFrameSerializer):
    """``TwilioFrameSerializer`` that never raises on input and reports marks and stop."""

    def keep_call_up(self) -> None:
        """Do not hang up when the pipeline ends (the call was transferred elsewhere)."""
        self._hangup_attempted = True

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """A frame for a Twilio message, or None (logged) for anything we can't use."""
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            logger.warning("media stream: ignoring a message that is not JSON ({} bytes)", len(data))
            return None
        if not isinstance(message, dict):
            logger.warning("media stream: ignoring a JSON {} (expected an object)", type(message).__name__)
            return None
        event = message.get("event")
        if event not in KNOWN_EVENTS:
            logger.warning("media stream: ignoring unknown event {!r}", str(event)[:40])
            return None
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                logger.warning("media stream: ignoring a mark without a name")
                return None
            return PlayedMarkFrame(mark=name)
        if event == "stop":
            return CallerHungUpFrame()
        if event == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                logger.warning("media stream: ignoring a media message without a payload")
                return None
            try:
                ulaw = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                logger.warning("media stream: ignoring a media message with a bad base64 payload")
                return None
            return await self._caller_audio(ulaw)
        if event == "dtmf" and not isinstance(message.get("dtmf"), dict):
            logger.warning("media stream: ignoring a malformed dtmf message")
            return None
        try:
            return await super().deserialize(data)
        except Exception as exc:  # never let one bad message end the call
            logger.warning("media stream: ignoring a {} message that failed to decode: {}", event, exc)
            return None

    async def _caller_audio(self, ulaw: bytes) -> Frame | None:
        """The caller's 20 ms as PCM at the pipeline's rate, converted as Pipecat's serializer does
        (here without parsing the JSON and decoding the base64 a second time: 50 times a second)."""
        try:
            pcm = await ulaw_to_pcm(ulaw, self._twilio_sample_rate, self._sample_rate, self._input_resampler)
        except Exception as exc:  # never let one bad message end the call
            logger.warning("media stream: ignoring a media message that failed to decode: {}", exc)
            return None
        if not pcm:
            return None
        return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=self._sample_rate)
