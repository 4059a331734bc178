"""Late frames of a reply cut off by a barge-in are no part of the next reply.

After an ``InterruptionFrame`` the TTS can still push words of the interrupted context (Pipecat
force-completes a context's untimed words), and the output transport passes the interruption on
before it empties its queue of timed words, so words of the old reply reach the assistant
aggregator after the interruption. Neither the ``PlayoutTracker`` (what the caller heard) nor the
assistant aggregator (conversation history, ``call_turns``) may count them in the next reply.
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType

from phone_agent.voice.playout import InterruptedContextFilter, PlayoutTracker

SAMPLE_RATE = 8000
NS_PER_MS = 1_000_000


class Sink(FrameProcessor):
    """Stands in for the next processor: keeps every frame pushed to it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def queue_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM, callback: Any = None
    ) -> None:
        self.frames.append(frame)

    def words_per_turn(self) -> list[list[str]]:
        """The TTS words received, split at each interruption (what the aggregator would join)."""
        turns: list[list[str]] = [[]]
        for frame in self.frames:
            if isinstance(frame, InterruptionFrame):
                turns.append([])
            elif isinstance(frame, TTSTextFrame):
                turns[-1].append(frame.text)
        return turns


def word(text: str, context_id: str, at_ms: int) -> TTSTextFrame:
    frame = TTSTextFrame(text, text_type=TextType.WORD, context_id=context_id)
    frame.pts = 10**9 + at_ms * NS_PER_MS
    return frame


def audio(context_id: str, ms: int) -> TTSAudioRawFrame:
    pcm16 = b"\x00\x10" * (SAMPLE_RATE * ms // 1000)  # non-silent
    return TTSAudioRawFrame(pcm16, SAMPLE_RATE, 1, context_id=context_id)


async def feed(processor: FrameProcessor, frames: list[Frame]) -> None:
    for frame in frames:
        await processor.process_frame(frame, FrameDirection.DOWNSTREAM)


async def test_late_words_of_an_interrupted_reply_stay_out_of_the_next_reply() -> None:
    tracker, output = PlayoutTracker(stream_sid="MZ1"), Sink()
    tracker.link(output)
    reply_a = [
        TTSStartedFrame(context_id="A"),
        audio("A", 1000),
        word("Our", "A", 0),
        word("tasting", "A", 300),
        word("menu", "A", 800),
        audio("A", 1000),
    ]
    await feed(tracker, [UserStoppedSpeakingFrame(), *reply_a])
    await feed(tracker, [InterruptionFrame(), UserStoppedSpeakingFrame()])  # barge-in, caller's turn
    audio_before_b = tracker.sent_ms
    reply_b_with_late_a = [
        TTSStartedFrame(context_id="B"),
        audio("B", 600),
        word("It", "B", 0),
        word("courses,", "A", 1300),  # force-completed words of the interrupted context
        word("is", "B", 150),
        audio("A", 400),  # and its audio, late
        word("ninety", "B", 300),
        word("dollars.", "B", 500),
    ]
    await feed(tracker, reply_b_with_late_a)

    assert tracker.reply_text(heard_only=False) == "It is ninety dollars."
    assert tracker.sent_ms == audio_before_b + 600  # the late audio of A was not sent to the phone
    contexts = [getattr(f, "context_id", None) for f in output.frames]
    assert "A" not in contexts[contexts.index("B") :]  # nothing of A went on after B started

    # after the output transport: A's words released late, interleaved with B's
    released, aggregator = InterruptedContextFilter(tracker=tracker), Sink()
    released.link(aggregator)
    await feed(
        released,
        [
            word("Our", "A", 0),
            word("tasting", "A", 300),
            InterruptionFrame(),
            UserStoppedSpeakingFrame(),
            word("It", "B", 0),
            word("menu", "A", 800),
            word("courses,", "A", 1300),
            word("is", "B", 150),
            word("ninety", "B", 300),
            word("dollars.", "B", 500),
        ],
    )
    assert aggregator.words_per_turn() == [["Our", "tasting"], ["It", "is", "ninety", "dollars."]]


async def test_words_of_an_uninterruptible_context_are_kept_after_a_barge_in() -> None:
    tracker, output = PlayoutTracker(stream_sid="MZ1"), Sink()
    tracker.link(output)
    notice = [TTSStartedFrame(context_id="N"), audio("N", 500), word("Please", "N", 0)]
    for frame in notice:
        frame.interruptible = False
    await feed(tracker, [*notice, InterruptionFrame()])
    released, aggregator = InterruptedContextFilter(tracker=tracker), Sink()
    released.link(aggregator)
    late = word("hold.", "N", 300)
    late.interruptible = False
    await feed(released, [InterruptionFrame(), late])
    assert aggregator.words_per_turn() == [[], ["hold."]]
    assert tracker.interrupted_contexts() == frozenset()
