"""For a speech-to-text service without a ladder (Deepgram streaming): its failure ends in the rescue.

``STTFailureWatch`` sits just before the STT service and sees the errors it pushes upstream. When
the service reports an error after which it cannot work (refused or dropped for good, a bad key:
``is_usable`` false), or a fatal one, the call cannot hear its caller any more: ``on_failed`` hands
it to the rescue (one apology, the fallback action) instead of leaving the caller unheard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from phone_agent.ops.provider_health import ProviderHealth, report_provider_error


class STTFailureWatch(FrameProcessor):
    """Calls ``on_failed`` once when ``stt`` reports an error it cannot recover from."""

    def __init__(
        self,
        *,
        stt: FrameProcessor,
        provider: str,
        on_failed: Callable[[str], Awaitable[None]],
        health: ProviderHealth | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._stt, self._provider, self._on_failed, self._health = stt, provider, on_failed, health
        self.failed = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if (
            isinstance(frame, ErrorFrame)
            and not self.failed
            and (frame.processor is self._stt or frame.processor is None)
            and (frame.fatal or not self._stt.is_usable)
        ):
            self.failed = True
            report_provider_error(
                self._health, self._provider, "stt", f"speech-to-text failed: {frame.error}"
            )
            await self._on_failed(frame.error)
        await self.push_frame(frame, direction)
