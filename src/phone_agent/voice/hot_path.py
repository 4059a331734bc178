"""Fewer frame hops per 20 ms of audio: audio frames stop where the last processor that reads them is.

In Pipecat a frame a processor does not consume is pushed on to the next one, so every 20 ms
frame of caller audio travelled all 16 hops of a call's pipeline (STT, user aggregator, LLM, TTS
failover, the service switcher's inner pipelines, playout tracker, output transport, ...) to the
sink, and each 40 ms chunk of agent audio went on past the output transport; a hop is a queue,
a task wake-up, an observer notification and a ``str(frame)`` for Pipecat's trace log. Only the
STT and the user aggregator (VAD, smart-turn) read caller audio, and nothing after the output
transport reads agent audio, so ``DropFrames`` placed after each ends those frames' trip there:
3 hops per caller frame instead of 16.

The same goes for the frames a call makes several times a second that nobody reads past a point
(counted in a call: 413 pushes a second before, 254 after): the output transport's
``BotSpeakingFrame`` (5 a second while the agent talks, broadcast both ways: 12 hops up to the
source, 4 down to the sink) stops at the playout tracker upstream and here downstream; the marks
the tracker sends and the caller's ``UserSpeakingFrame`` stop here too; and a mark Twilio echoes
goes from the serializer straight to the tracker (``on_played_mark``) instead of down ~10 hops.
At 50 calls on one core that is about an eighth of the agent's CPU, 77 → 68 % (``bench/results/capacity.md``).
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class DropFrames(FrameProcessor):
    """Consumes downstream frames of the given types; passes everything else on."""

    def __init__(self, *frame_types: type[Frame], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._frame_types = frame_types

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, self._frame_types):
            return
        await self.push_frame(frame, direction)
