"""The browser's leg of a web call: 16 kHz PCM over a websocket, with Twilio's mark/clear semantics.

The admin page's softphone (``admin/softphone.py``, ``admin/static/softphone.js``) talks to the same
pipeline a phone call uses, through Pipecat's ``FastAPIWebsocketTransport`` with this serializer
instead of Twilio's. The wire protocol, one websocket per call:

browser → agent
  binary        16-bit little-endian mono PCM at 16 kHz (the page sends 20 ms = 640 bytes at a time)
  text (JSON)   ``{"event": "mark", "name": N}``: the agent audio sent before mark N has played
                (echoed by the page's player, as Twilio echoes marks: the heard-tracking works
                unchanged). The owner hangs up by closing the socket.
agent → browser
  binary        the agent's voice, 16-bit little-endian mono PCM at 16 kHz
  text (JSON)   ``{"event": "mark", "name": N}`` after each piece of agent audio;
                ``{"event": "clear"}`` at a barge-in (drop what is queued, as Twilio's ``clear``);
                ``{"event": "ended"}`` when the agent ends the call

Anything else the browser sends (odd-length audio, oversize or malformed JSON, unknown events, audio
faster than twice real time) is counted and ignored (``StreamLimits``), never raised: one bad
message must not end the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.serializers.base_serializer import FrameSerializer

from phone_agent.voice.stream_limits import StreamLimits

WEB_SAMPLE_RATE = 16000
WEB_AUDIO_BYTES_PER_SECOND = 2 * WEB_SAMPLE_RATE  # 16-bit mono
MAX_WEB_MESSAGE_BYTES = 16 * 1024  # 0.5 s of audio; the page sends 20 ms at a time


def web_stream_limits() -> StreamLimits:
    """The budget of one browser connection: audio up to twice real time, small messages."""
    return StreamLimits(
        max_message_bytes=MAX_WEB_MESSAGE_BYTES,
        audio_bytes_per_second=2.0 * WEB_AUDIO_BYTES_PER_SECOND,
        audio_burst_bytes=10.0 * WEB_AUDIO_BYTES_PER_SECOND,
    )


class BrowserAudioSerializer(FrameSerializer):
    """Frames ⇄ the softphone's websocket messages (see the module docstring)."""

    def __init__(self, *, limits: StreamLimits | None = None) -> None:
        super().__init__()
        self.limits = limits or web_stream_limits()
        self.on_played_mark: Callable[[str], None] | None = None  # told each mark the page echoes

    def keep_call_up(self) -> None:
        """Nothing to keep up: a web call has no telephone leg (the rescue calls this before acting)."""

    async def serialize(self, frame: Frame) -> str | bytes | None:
        """Agent audio as binary PCM; marks, barge-ins and the end as small JSON texts."""
        if isinstance(frame, OutputAudioRawFrame):
            return frame.audio
        if isinstance(frame, InterruptionFrame):
            return json.dumps({"event": "clear"})
        if isinstance(frame, EndFrame):
            return json.dumps({"event": "ended"})
        if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
            if self.should_ignore_frame(frame):
                return None
            message = frame.message if isinstance(frame.message, dict) else {}
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if message.get("event") == "mark" and isinstance(name, str):
                return json.dumps({"event": "mark", "name": name})
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        """The caller's audio; None for a played mark (told to ``on_played_mark``) or (counted) else."""
        limits = self.limits
        await limits.pace()
        if not limits.size_ok(data):
            return None
        if isinstance(data, bytes):
            if len(data) % 2:
                limits.ignore("audio of an odd length", f"{len(data)} bytes")
                return None
            if not data or not limits.audio_ok(len(data)):
                return None
            return InputAudioRawFrame(audio=data, sample_rate=WEB_SAMPLE_RATE, num_channels=1)
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            limits.ignore("message that is not JSON")
            return None
        event = message.get("event") if isinstance(message, dict) else None
        if event == "mark" and isinstance(message.get("name"), str):
            if self.on_played_mark is not None:
                self.on_played_mark(message["name"])
            return None
        limits.ignore("unknown message", repr(str(event)[:40]))
        return None
