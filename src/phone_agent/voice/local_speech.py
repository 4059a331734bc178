"""Pipecat's Whisper (faster-whisper) and Piper services adapted to phone calls; needs ``[local]``.

Importing this module without the ``[local]`` extra raises a ConfigError that gives the install
command (Pipecat's habit for optional SDKs). Build the services with ``voice/local.py``.

Audio: a Twilio call is 8 kHz and Whisper hears 16 kHz, so each speech segment is resampled with
Pipecat's resampler before it is transcribed; Piper speaks at its voice's rate (22.05 kHz for
en_US-joe-medium) and Pipecat's TTS service resamples that to the call's 8 kHz.
Each model is loaded once per process, off the event loop, when the first call using it starts, and
shared by every call: faster-whisper and Piper's ONNX session may be run from several threads, and
Piper serialises its espeak-ng phonemizer itself.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from pipecat.audio.utils import create_file_resampler
from pipecat.frames.frames import Frame, StartFrame
from pipecat.services.tts_service import TTSService

from phone_agent.local_models import not_installed_error

try:  # the engines first: Pipecat's own modules log a `uv add` hint that does not apply here
    import faster_whisper
    import piper
    from pipecat.services.piper.tts import PiperTTSService
    from pipecat.services.whisper.stt import WhisperSTTService
except ImportError as exc:
    raise not_installed_error(exc.name or "faster_whisper") from exc

WHISPER_SAMPLE_RATE = 16000
WHISPER_COMPUTE_TYPE = "int8"  # CPU: faster than float32 for tiny.en with the same transcripts
WHISPER_THREADS = 2  # the machine's cores are shared with the calls' event loop
# A phone segment starts with up to ~0.8 s of line silence (Pipecat's pre-speech buffer), which
# lifts Whisper's no-speech probability to ~0.45 on real speech: Pipecat's 0.4 would drop the
# caller's words. Silero VAD has already judged the segment to be speech.
NO_SPEECH_MAX = 0.6

_load_lock = threading.Lock()


@functools.cache
def _whisper_model(path: str) -> faster_whisper.WhisperModel:
    return faster_whisper.WhisperModel(
        path,
        device="cpu",
        compute_type=WHISPER_COMPUTE_TYPE,
        cpu_threads=WHISPER_THREADS,
        local_files_only=True,
    )


@functools.cache
def _piper_voice(path: str) -> piper.PiperVoice:
    return piper.PiperVoice.load(path)


def load_whisper_model(path: Path) -> faster_whisper.WhisperModel:
    """The process's faster-whisper model in directory ``path`` (loaded on first use; blocking)."""
    with _load_lock:
        return _whisper_model(str(path))


def load_piper_voice(path: Path) -> piper.PiperVoice:
    """The process's Piper voice in ``path`` (loaded on first use; blocking)."""
    with _load_lock:
        return _piper_voice(str(path))


class SingleDecodeWhisper:
    """A faster-whisper model as Pipecat's ``run_stt`` calls it, decoding each segment once.

    faster-whisper re-decodes a segment at rising temperatures (up to six passes) when a pass looks
    unsure, which on phone audio and a busy CPU turned a 2.7 s answer into 11 s; one beam-search
    pass at temperature 0 gave the same transcripts here."""

    def __init__(self, model: faster_whisper.WhisperModel) -> None:
        self._model = model
        self.supported_languages = model.supported_languages

    def transcribe(self, audio: Any, **options: Any) -> Any:
        return self._model.transcribe(audio, temperature=0.0, **options)


class LocalWhisperSTTService(WhisperSTTService):
    """Pipecat's Whisper service on the shared model, fed segments resampled to 16 kHz."""

    def __init__(self, *, model_dir: Path, **kwargs: Any) -> None:
        self._model_dir = model_dir
        self._segment_resampler = create_file_resampler()
        settings = WhisperSTTService.Settings(model=str(model_dir), no_speech_prob=NO_SPEECH_MAX)
        super().__init__(settings=settings, **kwargs)

    def _load(self) -> None:
        """Nothing at construction: the model is loaded in ``start``, off the event loop."""
        self._model = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._model = SingleDecodeWhisper(await asyncio.to_thread(load_whisper_model, self._model_dir))
        unsupported = self._unsupported_language()
        if unsupported:
            await self.push_error(unsupported)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        """Transcribe one segment of the call's audio (16-bit PCM at the pipeline's input rate)."""
        if self.sample_rate != WHISPER_SAMPLE_RATE:
            audio = await self._segment_resampler.resample(audio, self.sample_rate, WHISPER_SAMPLE_RATE)
        async for frame in super().run_stt(audio):
            yield frame


class LocalPiperTTSService(PiperTTSService):
    """Pipecat's Piper service on the shared voice (no download, no load on the event loop)."""

    def __init__(self, *, voice_file: Path, **kwargs: Any) -> None:
        # PiperTTSService.__init__ would download a missing voice and load it where it is built.
        TTSService.__init__(
            self,
            push_start_frame=True,
            push_stop_frames=True,
            settings=PiperTTSService.Settings(model=None, voice=voice_file.stem, language=None),
            **kwargs,
        )
        self._voice_file = voice_file

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._voice = await asyncio.to_thread(load_piper_voice, self._voice_file)
