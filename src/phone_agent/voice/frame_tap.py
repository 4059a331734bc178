"""The call's observers, told about the frames they watch inline, with no queue or task per observer.

Pipecat's ``PipelineWorker`` hands every push and every ``process_frame`` of every processor to
its ``WorkerObserver``, which puts it on a queue per observer for a task per observer to pass on:
with our two observers (``CallRecorder``, ``SpeechEndWatcher``) that was four queue puts and task
wake-ups per frame hop, caller audio included, though neither reads audio in or looks at a frame
being processed. ``FrameTap`` takes the worker's place as the processors' observer: a push of a
frame type no tap watches returns at once, a watched one reaches the taps that watch it on its
first push (where it was made), called from the pushing processor. Taps must be quick and never
wait: they note a time or start a task. Observers Pipecat adds itself (none with our options) keep
their queue and task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pipecat.frames.frames import Frame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed, ProcessorSetUp
from pipecat.pipeline.worker import PipelineWorker
from pipecat.pipeline.worker_observer import WorkerObserver
from pipecat.utils.asyncio.task_manager import BaseTaskManager


class TapObserver(BaseObserver):
    """An observer told only of the first push of the frame types in ``watched``."""

    watched: ClassVar[tuple[type[Frame], ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(observe_every_push=False, **kwargs)


class FrameTap(WorkerObserver):
    """Calls its taps inline for the frames they watch; proxies ``proxied`` as Pipecat does."""

    def __init__(self, taps: Sequence[TapObserver], *, proxied: list[BaseObserver]) -> None:
        super().__init__(observers=proxied)
        self._taps = list(taps)
        self._watched = tuple({kind for tap in taps for kind in tap.watched})

    async def setup(self, task_manager: BaseTaskManager) -> None:
        await super().setup(task_manager)
        for tap in self._taps:
            await tap.setup(task_manager)

    async def cleanup(self) -> None:
        await super().cleanup()
        for tap in self._taps:
            await tap.cleanup()

    async def on_pipeline_started(self) -> None:
        await super().on_pipeline_started()
        for tap in self._taps:
            await tap.on_pipeline_started()

    async def on_processor_setup(self, data: ProcessorSetUp) -> None:
        await super().on_processor_setup(data)
        for tap in self._taps:
            await tap.on_processor_setup(data)

    async def on_process_frame(self, data: FrameProcessed) -> None:
        if self._proxies:  # taps see pushes only
            await super().on_process_frame(data)

    async def on_push_frame(self, data: FramePushed) -> None:
        if self._proxies:
            await super().on_push_frame(data)  # tells first pushes from repeated ones
        frame = data.frame
        if not isinstance(frame, self._watched):
            return
        if not self._proxies:
            data.first_push = frame.id not in self._frames_pushed
            if data.first_push:
                self._frames_pushed[frame.id] = frame
        if not data.first_push:
            return
        for tap in self._taps:
            if isinstance(frame, tap.watched):
                await tap.on_push_frame(data)


class TappedPipelineWorker(PipelineWorker):
    """A ``PipelineWorker`` whose processors report to a ``FrameTap`` of ``taps``."""

    def __init__(self, pipeline: Any, *, taps: Sequence[TapObserver], **kwargs: Any) -> None:
        super().__init__(pipeline, **kwargs)
        self._observer = FrameTap(taps, proxied=self._observer._observers)
