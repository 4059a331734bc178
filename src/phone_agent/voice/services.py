"""The provider services of a call, built from Settings with Pipecat's adapters.

STT: OpenAI realtime transcription streamed while the caller speaks (default, ``stt_mode=streaming``;
voice/streaming_stt.py) with the segmented ladder of endpoints behind it (voice/stt_ladder.py; alone
with ``stt_mode=segmented``), Deepgram streaming (the LLM is the brain's: brain/pipeline.py), or
local Whisper.
TTS: ElevenLabs websocket with a fallback voice (OpenAI TTS or local Piper) behind a failover switcher.
Every provider is reached through the base URL in Settings. ``voice_stack=local`` replaces STT and
TTS with faster-whisper and Piper on this machine (voice/local.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI
from pipecat.frames.frames import ErrorFrame
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.tts_service import TTSService

from phone_agent.brain.persona import greeting_for
from phone_agent.config import Settings
from phone_agent.errors import ConfigError
from phone_agent.http_pool import HttpPool, openai_client
from phone_agent.ops.provider_health import ProviderHealth
from phone_agent.voice.first_clause import speak_from_first_clause
from phone_agent.voice.local import build_local_stt, build_local_tts
from phone_agent.voice.phrase_cache import CachedPhraseElevenLabsTTSService, PhraseStore
from phone_agent.voice.streaming_stt import StreamingSTTService
from phone_agent.voice.stt_ladder import DeepgramTranscriber, LadderSTTService, STTRung

PHRASES_DIR = "phrases"  # under data_dir: the greeting's recorded audio (voice/phrase_cache.py)
OPENAI_TTS_SAMPLE_RATE = 24000
FALLBACK_TTS_MODEL = "gpt-4o-mini-tts"
STT_TIMEOUT = 10.0  # seconds for one transcription request (the ladder gives up on it much sooner)


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


def build_stt(
    settings: Settings,
    *,
    http: HttpPool | None = None,
    on_exhausted: Callable[[str], Awaitable[None]] | None = None,
    health: ProviderHealth | None = None,
) -> FrameProcessor:
    """Speech-to-text: OpenAI transcription (streamed, or segmented by VAD, with its ladder), Deepgram,
    or local Whisper.

    Args:
        settings: the call's settings.
        http: the process's shared connection pool for OpenAI (``http_pool``), if any.
        on_exhausted: called when no transcription endpoint answered an utterance (voice/stt_ladder.py).
        health: where provider failures are reported.
    """
    if settings.voice_stack == "local":
        return build_local_stt(settings)
    if settings.stt_provider == "deepgram":
        from pipecat.services.deepgram.stt import DeepgramSTTService

        return DeepgramSTTService(
            api_key=_require(settings, "deepgram_api_key", "speech-to-text with Deepgram"),
            base_url=settings.deepgram_base_url,
        )
    ladder = LadderSTTService(
        rungs=stt_rungs(settings, http=http),
        on_exhausted=on_exhausted,
        health=health,
        http_client=http,  # Pipecat's own client (unused: the rungs transcribe) stays on the pool
        settings=OpenAISTTService.Settings(model=settings.stt_model),
    )
    if settings.stt_mode == "segmented":
        return ladder
    url = streaming_stt_url(settings)
    return StreamingSTTService(
        api_key=_require(settings, "openai_api_key", "speech-to-text"),
        base_url=url,
        model=settings.stt_model,
        fallback=ladder,
        health=health,
        # an OpenAI-compatible server nobody said has realtime transcription: its refusal is no failure
        refusal_is_failure=settings.source_of("realtime_base_url") != "default"
        or url.startswith(OPENAI_REALTIME),
    )


OPENAI_REALTIME = "wss://api.openai.com/"


def streaming_stt_url(settings: Settings) -> str:
    """The realtime transcription endpoint: ``realtime_base_url`` when configured, else the host of
    ``openai_base_url`` (an OpenAI-compatible server or proxy gets the key, never another host)."""
    if settings.source_of("realtime_base_url") != "default":
        return settings.realtime_base_url
    return websocket_base(settings.openai_base_url.rstrip("/")) + "/realtime"


def stt_rungs(settings: Settings, *, http: HttpPool | None = None) -> list[STTRung]:
    """The STT ladder's endpoints: ``stt_model``, then ``stt_fallback_provider`` (unless none)."""
    key = _require(settings, "openai_api_key", "speech-to-text")
    primary = _stt_client(key, settings.openai_base_url, http)
    rungs = [STTRung("primary", "openai", settings.stt_model, client=primary)]
    if settings.stt_fallback_provider == "deepgram" and settings.secret("deepgram_api_key"):
        model = settings.stt_fallback_model if settings.stt_fallback_model.startswith("nova") else "nova-3"
        transcriber = DeepgramTranscriber(
            api_key=str(settings.secret("deepgram_api_key")), base_url=settings.deepgram_base_url, http=http
        )
        rungs.append(STTRung("secondary", "deepgram", model, deepgram=transcriber))
    elif settings.stt_fallback_provider == "openai" and settings.stt_fallback_model:
        base_url = settings.stt_fallback_base_url or settings.openai_base_url
        client = _stt_client(settings.secret("stt_fallback_api_key") or key, base_url, http)
        provider = "openai" if base_url == settings.openai_base_url else "stt_secondary"
        rungs.append(STTRung("secondary", provider, settings.stt_fallback_model, client=client))
    return rungs


def _stt_client(api_key: str, base_url: str, http: HttpPool | None) -> AsyncOpenAI:
    if http is None:
        return AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=STT_TIMEOUT)
    return openai_client(api_key=api_key, base_url=base_url, http=http, timeout=STT_TIMEOUT)


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
    fixed phrases (the greeting) come from the process's phrase cache once synthesised, and the
    greeting for callers not known by name from ``<data_dir>/phrases`` after a restart.
    With ``voice_stack=local``: the local Piper voice."""
    if settings.voice_stack == "local":
        return build_local_tts(settings)
    tts = CachedElevenLabsCallTTSService(
        phrase_store=PhraseStore(Path(settings.data_dir) / PHRASES_DIR),
        lasting_phrases=[greeting_for(settings)],
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
