"""Late frames of a reply cut off by a barge-in are no part of the next reply.

After an ``InterruptionFrame`` the TTS can still push words of the interrupted context (Pipecat
force-completes a context's untimed words), and the output transport passes the interruption on
before it empties its queue of timed words, so words of the old reply reach the assistant
aggregator after the interruption. Neither the ``PlayoutTracker`` (what the caller heard) nor the
assistant aggregator (conversation history, ``call_turns``) may count them in the next reply.

The processors are set up and started as a pipeline does before their first frame: a processor
handles an ``InterruptionFrame`` by cancelling and re-creating its frame-processing task, which
needs the task manager the pipeline gives it in ``setup()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager
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


@asynccontextmanager
async def started(*processors: FrameProcessor) -> AsyncIterator[None]:
    """Set ``processors`` up and start them as a pipeline would; clean them up afterwards."""
    setup = FrameProcessorSetup(
        clock=SystemClock(), task_manager=TaskManager(), pipeline_worker=PipelineWorker(Pipeline([]))
    )
    for processor in processors:
        await processor.setup(setup)
        await processor.process_frame(StartFrame(), FrameDirection.DOWNSTREAM)
    try:
        yield
    finally:
        for processor in processors:
            await processor.cleanup()


async def test_late_words_of_an_interrupted_reply_stay_out_of_the_next_reply() -> None:
    tracker, output = PlayoutTracker(stream_sid="MZ1"), Sink()
    tracker.link(output)
    released, aggregator = InterruptedContextFilter(tracker=tracker), Sink()
    released.link(aggregator)
    reply_a = [
        TTSStartedFrame(context_id="A"),
        audio("A", 1000),
        word("Our", "A", 0),
        word("tasting", "A", 300),
        word("menu", "A", 800),
        audio("A", 1000),
    ]
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
    async with started(tracker, released):
        await feed(tracker, [UserStoppedSpeakingFrame(), *reply_a])
        await feed(tracker, [InterruptionFrame(), UserStoppedSpeakingFrame()])  # barge-in, caller's turn
        audio_before_b = tracker.sent_ms
        await feed(tracker, reply_b_with_late_a)

        assert tracker.reply_text(heard_only=False) == "It is ninety dollars."
        assert tracker.sent_ms == audio_before_b + 600  # the late audio of A was not sent to the phone
        contexts = [getattr(f, "context_id", None) for f in output.frames]
        assert "A" not in contexts[contexts.index("B") :]  # nothing of A went on after B started

        # after the output transport: A's words released late, interleaved with B's
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
    released, aggregator = InterruptedContextFilter(tracker=tracker), Sink()
    released.link(aggregator)
    notice = [TTSStartedFrame(context_id="N"), audio("N", 500), word("Please", "N", 0)]
    for frame in notice:
        frame.interruptible = False
    late = word("hold.", "N", 300)
    late.interruptible = False
    async with started(tracker, released):
        await feed(tracker, [*notice, InterruptionFrame()])
        await feed(released, [InterruptionFrame(), late])
    assert aggregator.words_per_turn() == [[], ["hold."]]
    assert tracker.interrupted_contexts() == frozenset()
