"""The provider services of a call, built from Settings with Pipecat's adapters.

STT: OpenAI transcription (default) or Deepgram streaming (the LLM is the brain's: brain/pipeline.py).
TTS: ElevenLabs websocket with a fallback voice (OpenAI TTS or local Piper) behind a failover switcher.
Every provider is reached through the base URL in Settings. ``voice_stack=local`` replaces STT and
TTS with faster-whisper and Piper on this machine (voice/local.py).
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import ErrorFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.tts_service import TTSService

from phone_agent.config import Settings
from phone_agent.errors import ConfigError
from phone_agent.http_pool import HttpPool
from phone_agent.voice.first_clause import speak_from_first_clause
from phone_agent.voice.local import build_local_stt, build_local_tts
from phone_agent.voice.phrase_cache import CachedPhraseElevenLabsTTSService

OPENAI_TTS_SAMPLE_RATE = 24000
FALLBACK_TTS_MODEL = "gpt-4o-mini-tts"


def _require(settings: Settings, name: str, what: str) -> str:
    value = settings.secret(name)
    if not value:
        raise ConfigError(f"{name} is not set: {what} needs it (set {name.upper()}).")
    return value


def websocket_base(url: str) -> str:
    """https://host → wss://host (ElevenLabs and Deepgram streaming endpoints)."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def build_stt(settings: Settings, *, http: HttpPool | None = None) -> FrameProcessor:
    """Speech-to-text: OpenAI transcription (segmented by VAD), Deepgram streaming, or local Whisper.

    ``http``: the process's shared connection pool for OpenAI (``http_pool``), if any.
    """
    if settings.voice_stack == "local":
        return build_local_stt(settings)
    if settings.stt_provider == "deepgram":
        from pipecat.services.deepgram.stt import DeepgramSTTService

        return DeepgramSTTService(
            api_key=_require(settings, "deepgram_api_key", "speech-to-text with Deepgram"),
            base_url=settings.deepgram_base_url,
        )
    return OpenAISTTService(
        api_key=_require(settings, "openai_api_key", "speech-to-text"),
        base_url=settings.openai_base_url,
        http_client=http,
        settings=OpenAISTTService.Settings(model=settings.stt_model),
    )


class ElevenLabsCallTTSService(ElevenLabsTTSService):
    """ElevenLabs TTS that reports a dropped socket as an error before reconnecting.

    Pipecat only logs the drop and reconnects; the sentence in flight is lost without a word. The
    error lets ``TTSFailover`` move to the fallback voice and speak what was not heard.
    """

    async def _maybe_try_reconnect(
        self, error_message: str, report_error: Any, error: Exception | None = None
    ) -> bool:
        if not self._disconnecting:
            await report_error(ErrorFrame(f"ElevenLabs connection dropped: {error_message}", exception=error))
        return await super()._maybe_try_reconnect(error_message, report_error, error)


class CachedElevenLabsCallTTSService(CachedPhraseElevenLabsTTSService, ElevenLabsCallTTSService):
    """The call's ElevenLabs voice, with fixed phrases served from the phrase cache."""


def build_primary_tts(settings: Settings) -> TTSService:
    """ElevenLabs streaming TTS with the voice settings from config, speaking from the first clause;
    fixed phrases (the greeting) come from the process's phrase cache once synthesised.
    With ``voice_stack=local``: the local Piper voice."""
    if settings.voice_stack == "local":
        return build_local_tts(settings)
    tts = CachedElevenLabsCallTTSService(
        api_key=_require(settings, "elevenlabs_api_key", "the ElevenLabs voice"),
        url=websocket_base(settings.elevenlabs_base_url),
        settings=ElevenLabsTTSService.Settings(
            voice=settings.elevenlabs_voice_id,
            model=settings.tts_model,
            stability=settings.tts_stability,
            similarity_boost=settings.tts_similarity,
            style=settings.tts_style,
            speed=settings.tts_speed,
        ),
    )
    return speak_from_first_clause(tts)


def build_fallback_tts(settings: Settings, *, http: HttpPool | None = None) -> FrameProcessor | None:
    """The voice used when the primary fails (OpenAI TTS or local Piper), or None when disabled,
    unconfigured, or the same local voice as the primary.

    ``http``: the process's shared connection pool (``http_pool``), if any.
    """
    if settings.tts_fallback_provider == "local" and settings.voice_stack != "local":
        return build_local_tts(settings)
    if settings.tts_fallback_provider != "openai" or not settings.secret("openai_api_key"):
        return None
    from pipecat.services.openai.tts import OpenAITTSService

    return OpenAITTSService(
        api_key=settings.secret("openai_api_key"),
        base_url=settings.openai_base_url,
        http_client=http,
        sample_rate=OPENAI_TTS_SAMPLE_RATE,
        settings=OpenAITTSService.Settings(voice=settings.tts_fallback_voice, model=FALLBACK_TTS_MODEL),
    )
