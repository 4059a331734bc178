"""Handing a live call from realtime mode to pipeline mode on the same Twilio media stream.

When the realtime socket is refused, drops or never answers, the call goes on in pipeline mode
(STT → LLM → TTS) if those providers are configured (``pipeline_configured``), instead of an
apology and a hang-up. The realtime pipeline ends without closing the caller's websocket or hanging
up (``HandoverWebSocket.keep_open``), and a pipeline-mode call is built on the same socket, with
the realtime conversation as its history.
"""

from __future__ import annotations

from typing import Any

from fastapi import WebSocket

from phone_agent.config import Settings


class HandoverWebSocket:
    """The caller's websocket as one pipeline's transport sees it: ``close()`` can be held back.

    Pipecat's transport closes its websocket when its pipeline ends; while ``keep_open`` is set that
    close does nothing, so the next pipeline can take the stream on. Everything else is the socket's.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self.keep_open = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._websocket, name)

    async def close(self, *args: Any, **kwargs: Any) -> None:
        """Close the socket, unless the call is being handed to another pipeline."""
        if not self.keep_open:
            await self._websocket.close(*args, **kwargs)


def pipeline_configured(settings: Settings) -> bool:
    """Whether pipeline mode's providers have their keys (STT, LLM and a voice)."""
    stt_key = "deepgram_api_key" if settings.stt_provider == "deepgram" else "openai_api_key"
    voice = settings.secret("elevenlabs_api_key") or (
        settings.tts_fallback_provider == "openai" and settings.secret("openai_api_key")
    )
    return bool(settings.secret(stt_key) and settings.secret("openai_api_key") and voice)
