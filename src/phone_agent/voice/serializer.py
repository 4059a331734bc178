"""Twilio Media Streams serializer: Pipecat's, made safe for a live call and aware of `mark` echoes.

Pipecat's ``TwilioFrameSerializer`` does the audio conversion (8 kHz mu-law <-> PCM), ``clear`` on
interruption and the REST hang-up. This subclass adds what a phone call needs on top:

- a ``mark`` echoed by Twilio goes straight to ``on_played_mark`` (the heard-tracker's): as a frame
  it made ~10 hops down the pipeline to the tracker, five times a second while the agent talks;
- ``stop`` becomes a ``CallerHungUpFrame``;
- malformed or unknown messages of any shape or depth are counted and ignored: the transport's
  receive loop dies on the first exception a serializer raises, which would end the call;
- the connection's budget (``StreamLimits``): oversize messages are dropped unread, messages are
  read no faster than the message rate allows, audio beyond the audio rate is dropped;
- the caller's audio goes on in frames of ``CALLER_FRAME_MS`` (two of Twilio's 20 ms messages per
  ``InputAudioRawFrame``): every frame costs the same trip through the call's pipeline (transport
  queue, STT, VAD, turn strategies, observers: a dozen queue hand-offs and task wake-ups), whatever
  its length, and it is the pipeline's most frequent frame; halving their number halves that work
  on the event loop every call shares. The price is at most 20 ms (10 on average) before the VAD
  and the STT hear a sound; Silero's own windows are 32 ms.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipecat.audio.utils import ulaw_to_pcm
from pipecat.frames.frames import Frame, InputAudioRawFrame, SystemFrame
from pipecat.serializers.twilio import TwilioFrameSerializer

from phone_agent.voice.stream import decode_message
from phone_agent.voice.stream_limits import StreamLimits

CALLER_FRAME_MS = 40  # caller audio per InputAudioRawFrame (Twilio sends 20 ms a message)
TWILIO_FRAME_MS = 20
KNOWN_EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop"}


@dataclass
class CallerHungUpFrame(SystemFrame):
    """Twilio sent ``stop``: the caller hung up (or the call was redirected)."""


class TwilioMediaSerializer(TwilioFrameSerializer):
    """``TwilioFrameSerializer`` that never raises on input, keeps to a budget and reports marks and stop."""

    def __init__(
        self,
        *args: Any,
        limits: StreamLimits | None = None,
        caller_frame_ms: int = CALLER_FRAME_MS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or StreamLimits()
        self._caller_frame_bytes = 8 * caller_frame_ms  # mu-law at 8 kHz: a byte a sample
        self._caller_ulaw = b""  # caller audio not yet a whole frame
        self.on_played_mark: Callable[[str], None] | None = None  # told each mark Twilio echoes

    def keep_call_up(self) -> None:
        """Do not hang up when the pipeline ends (the call was transferred elsewhere)."""
        self._hangup_attempted = True

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """A frame for a Twilio message, or None (counted) for anything we can't or won't use."""
        limits = self.limits
        await limits.pace()
        message = decode_message(data, limits)
        if message is None:
            return None
        event = message["event"]
        if event not in KNOWN_EVENTS:
            limits.ignore("unknown event", repr(str(event)[:40]))
            return None
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                limits.ignore("mark without a name")
            elif self.on_played_mark is not None:
                self.on_played_mark(name)
            return None
        if event == "stop":
            return CallerHungUpFrame()
        if event == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                limits.ignore("media message without a payload")
                return None
            try:
                audio = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                limits.ignore("media message with a bad base64 payload")
                return None
            if not limits.audio_ok(len(audio)):
                return None
            return await self._caller_audio(audio)
        if event == "dtmf":
            dtmf = message.get("dtmf")
            if not isinstance(dtmf, dict) or not isinstance(dtmf.get("digit"), str):
                limits.ignore("malformed dtmf message")
                return None
        try:
            return await super().deserialize(data)
        except Exception as exc:  # never let one bad message end the call
            limits.ignore(f"{event} message that failed to decode", type(exc).__name__)
            return None

    async def _caller_audio(self, ulaw: bytes) -> Frame | None:
        """The caller's audio as PCM at the pipeline's rate once a whole frame of it has come, converted
        as Pipecat's serializer does (here without parsing the JSON and decoding the base64 again)."""
        ulaw = self._caller_ulaw + ulaw
        if len(ulaw) < self._caller_frame_bytes:
            self._caller_ulaw = ulaw
            return None
        self._caller_ulaw = b""
        try:
            pcm = await ulaw_to_pcm(ulaw, self._twilio_sample_rate, self._sample_rate, self._input_resampler)
        except Exception as exc:  # never let one bad message end the call
            self.limits.ignore("media message that failed to decode", type(exc).__name__)
            return None
        if not pcm:
            return None
        return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=self._sample_rate)
