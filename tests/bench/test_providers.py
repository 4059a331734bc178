"""The bench's provider process: the STT fakes say the transcript the bench was given."""

from __future__ import annotations

from pathlib import Path

import httpx
from bench.__main__ import parse_options
from bench.run import ProviderProcess

from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16, write_pcm16_wav


def test_every_caller_is_heard_saying_the_transcript_given_on_the_command_line(tmp_path: Path) -> None:
    wav = write_pcm16_wav(
        tmp_path / "turn.wav", ulaw_to_pcm16(read_ulaw(speech_wav("Thanks, that is all."))), 8000
    )
    options, _out, _label = parse_options(["--transcript", "ok thanks that is all"])
    providers = ProviderProcess(options.latencies)
    try:
        response = httpx.post(
            f"{providers.urls['openai']}/audio/transcriptions",
            headers={"Authorization": f"Bearer {providers.urls['openai_api_key']}"},
            files={"file": ("turn.wav", wav.read_bytes(), "audio/wav")},
            data={"model": "gpt-4o-transcribe"},
            timeout=10,
        )
    finally:
        providers.stop()
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "ok thanks that is all"
