"""Speech on this machine (``pip install -e '.[local]'``): faster-whisper STT and Piper TTS.

``voice_stack=local`` uses both for every pipeline-mode call; ``tts_fallback_provider=local`` makes
Piper the voice used when ElevenLabs fails; issue 12's STT ladder can take ``build_local_stt`` as a
rung. No network is needed: the models are files (phone_agent/local_models.py). This module imports
without the extra; building a service without it raises a ConfigError that gives the install command.
"""

from __future__ import annotations

import asyncio
import time
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

from loguru import logger

from phone_agent.config import Settings
from phone_agent.errors import ConfigError
from phone_agent.local_models import (
    not_installed_error,
    piper_voice_file,
    require_local_stack,
    whisper_model_dir,
)
from phone_agent.voice.first_clause import speak_from_first_clause

if TYPE_CHECKING:
    from phone_agent.voice.local_speech import LocalPiperTTSService, LocalWhisperSTTService


def _local_speech() -> ModuleType:
    try:  # (without the engines, local_speech raises the ConfigError itself)
        return import_module("phone_agent.voice.local_speech")
    except ImportError as exc:
        raise not_installed_error(exc.name or "phone_agent.voice.local_speech") from exc


def build_local_stt(settings: Settings) -> LocalWhisperSTTService:
    """faster-whisper speech-to-text (Pipecat's Whisper service); the model loads when the call starts."""
    model_dir = whisper_model_dir(settings)
    return _local_speech().LocalWhisperSTTService(model_dir=model_dir)


def build_local_tts(settings: Settings) -> LocalPiperTTSService:
    """Piper text-to-speech (Pipecat's Piper service), speaking from each reply's first clause."""
    voice_file = piper_voice_file(settings)
    return speak_from_first_clause(_local_speech().LocalPiperTTSService(voice_file=voice_file))


async def preload_local_models(settings: Settings) -> None:
    """Load the local models the settings use now (at startup, off the event loop), not in the first call.

    A problem is logged, not raised: an admin override may have chosen the local stack, and the
    admin page must still start to undo it."""
    try:
        files = require_local_stack(settings)
    except ConfigError as exc:
        logger.error("local speech unavailable: {}", exc)
        return
    if not files:
        return
    started = time.perf_counter()
    speech = _local_speech()
    if settings.voice_stack == "local":
        await asyncio.to_thread(speech.load_whisper_model, whisper_model_dir(settings))
    await asyncio.to_thread(speech.load_piper_voice, piper_voice_file(settings))
    logger.info("local speech models loaded in {:.1f} s", time.perf_counter() - started)
