"""The call's observers see the first push of the frames they watch, inline, with no task of their own."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import BotStoppedSpeakingFrame, Frame, InputAudioRawFrame, TranscriptionFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.asyncio.task_manager import TaskManager

from phone_agent.voice.frame_tap import FrameTap, TapObserver


class _Seen(TapObserver):
    def __init__(self, *watched: type[Frame]) -> None:
        super().__init__()
        self.watched = watched
        self.pushes: list[tuple[str, str]] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        self.pushes.append((type(data.frame).__name__, data.source.name))


class _Every(BaseObserver):  # an observer of Pipecat's own kind: it wants every push
    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[str] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        self.pushes.append(type(data.frame).__name__)


def _hops(frame: Frame, *names: str) -> list[FramePushed]:
    processors = [FrameProcessor(name=name) for name in names]
    return [
        FramePushed(source=a, destination=b, frame=frame, direction=FrameDirection.DOWNSTREAM, timestamp=0)
        for a, b in zip(processors, processors[1:], strict=False)
    ]


async def _push_all(tap: FrameTap) -> None:
    audio = InputAudioRawFrame(b"\x00" * 320, 8000, 1)
    words = TranscriptionFrame("hello", "caller", "now")
    for data in [*_hops(audio, "input", "stt", "user"), *_hops(words, "stt", "user", "llm")]:
        await tap.on_push_frame(data)
    for data in _hops(BotStoppedSpeakingFrame(), "output", "drop"):
        await tap.on_push_frame(data)


async def test_a_tap_is_called_at_once_for_the_first_push_of_the_frames_it_watches_only() -> None:
    words, ends = _Seen(TranscriptionFrame), _Seen(BotStoppedSpeakingFrame)
    tap = FrameTap([words, ends], proxied=[])
    await tap.setup(TaskManager())
    await _push_all(tap)  # no await of any queue: each tap has been called when its push returns
    assert words.pushes == [("TranscriptionFrame", "stt")]  # where it was made, once
    assert ends.pushes == [("BotStoppedSpeakingFrame", "output")]
    await tap.cleanup()


async def test_observers_pipecat_adds_itself_still_see_every_push_on_their_own_task() -> None:
    words, every = _Seen(TranscriptionFrame), _Every()
    tap = FrameTap([words], proxied=[every])
    await tap.setup(TaskManager())
    await _push_all(tap)
    for _ in range(20):
        if len(every.pushes) == 5:
            break
        await asyncio.sleep(0.01)
    assert every.pushes == [
        *["InputAudioRawFrame"] * 2,
        *["TranscriptionFrame"] * 2,
        "BotStoppedSpeakingFrame",
    ]
    assert words.pushes == [("TranscriptionFrame", "stt")]
    await tap.cleanup()
