"""`python -m bench.local_speech`: figures of the local speech stack (``[local]``) on this machine.

Runs the real services a ``voice_stack=local`` call uses (Pipecat's Whisper and Piper services as
``build_local_stt``/``build_local_tts`` configure them) in a Pipecat pipeline at the phone's 8 kHz,
and prints:
- model load time (Whisper tiny.en, Piper en_US-joe-medium), once per process;
- STT latency: the end of a caller's speech segment (``VADUserStoppedSpeakingFrame``) to its
  transcript, for espeak-ng utterances off an 8 kHz mu-law line, and the real-time factor
  (latency / seconds of speech);
- Piper time to first audio (the text reaching the TTS to its first audio frame), total synthesis
  time and real-time factor for a greeting and two replies.
Figures vary with load: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test
from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16

from bench.callers import UTTERANCES
from phone_agent.config import load_settings
from phone_agent.local_models import piper_voice_file, whisper_model_dir
from phone_agent.voice.local import build_local_stt, build_local_tts

PHONE_RATE = 8000
REPLIES = (
    "Bella Cucina, this is Ava. How can I help you today?",
    "Sure, I can book that for you. What time would suit you best?",
    "We are open from nine in the morning until five in the afternoon, Monday to Friday.",
)


class Probe(FrameProcessor):
    """Notes when frames of the given types pass (monotonic seconds)."""

    def __init__(self, *types: type[Frame]) -> None:
        super().__init__()
        self._types, self.seen = types, []  # type: ignore[var-annotated]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, self._types):
            self.seen.append((time.monotonic(), frame))
        await self.push_frame(frame, direction)


async def stt_once(stt: Any, text: str) -> tuple[float, float, str]:
    """(latency s, speech s, transcript) for one espeak utterance as one VAD segment."""
    pcm = ulaw_to_pcm16(read_ulaw(speech_wav(text)))
    chunk = PHONE_RATE * 2 // 50
    frames: list[Frame] = [VADUserStartedSpeakingFrame()]
    frames += [InputAudioRawFrame(pcm[i : i + chunk], PHONE_RATE, 1) for i in range(0, len(pcm), chunk)]
    frames.append(VADUserStoppedSpeakingFrame())
    before, after = Probe(VADUserStoppedSpeakingFrame), Probe(TranscriptionFrame)
    await run_test(
        Pipeline([before, stt, after]), frames_to_send=frames, pipeline_params=_params(), start_timeout=120
    )
    latency = after.seen[-1][0] - before.seen[0][0]
    return latency, len(pcm) / 2 / PHONE_RATE, " ".join(f.text.strip() for _, f in after.seen)


async def tts_once(tts: Any, text: str) -> tuple[float, float, float]:
    """(time to first audio s, synthesis s, audio s) for one reply."""
    before, after = Probe(TTSSpeakFrame), Probe(TTSAudioRawFrame)
    await run_test(
        Pipeline([before, tts, after]),
        frames_to_send=[TTSSpeakFrame(text)],
        pipeline_params=_params(),
        start_timeout=120,
    )
    start = before.seen[0][0]
    audio = sum(len(f.audio) for _, f in after.seen) / 2 / PHONE_RATE
    return after.seen[0][0] - start, after.seen[-1][0] - start, audio


def _params() -> Any:
    from pipecat.pipeline.worker import PipelineParams

    return PipelineParams(audio_in_sample_rate=PHONE_RATE, audio_out_sample_rate=PHONE_RATE)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


async def main(runs: int) -> None:
    settings = load_settings({}, config_path=Path(os.devnull))
    from phone_agent.voice.local_speech import load_piper_voice, load_whisper_model

    started = time.perf_counter()
    load_whisper_model(whisper_model_dir(settings))
    whisper_load = time.perf_counter() - started
    started = time.perf_counter()
    load_piper_voice(piper_voice_file(settings))
    piper_load = time.perf_counter() - started
    print(f"# local speech stack ({_load()})")
    print(f"model load: Whisper tiny.en {whisper_load:.2f} s, Piper en_US-joe-medium {piper_load:.2f} s")

    print("\nSTT (faster-whisper tiny.en, int8, 8 kHz phone audio resampled to 16 kHz)")
    print("| utterance | speech s | latency p50 s | RTF | transcript |\n|---|---|---|---|---|")
    latencies, factors = [], []
    for text in UTTERANCES:
        results = [await stt_once(build_local_stt(settings), text) for _ in range(runs)]
        p50 = statistics.median(r[0] for r in results)
        latencies.append(p50)
        factors.append(p50 / results[0][1])
        print(f"| {text} | {results[0][1]:.2f} | {p50:.2f} | {p50 / results[0][1]:.2f} | {results[0][2]} |")
    stt_p50, rtf_p50 = statistics.median(latencies), statistics.median(factors)
    print(f"STT latency median {stt_p50:.2f} s, RTF median {rtf_p50:.2f}")

    print("\nTTS (Piper en_US-joe-medium 22.05 kHz, resampled to 8 kHz)")
    print("| reply | time to first audio p50 s | synthesis s | audio s | RTF |\n|---|---|---|---|---|")
    firsts = []
    for text in REPLIES:
        results = [await tts_once(build_local_tts(settings), text) for _ in range(runs)]
        first = statistics.median(r[0] for r in results)
        total = statistics.median(r[1] for r in results)
        firsts.append(first)
        print(f"| {text} | {first:.2f} | {total:.2f} | {results[0][2]:.2f} | {total / results[0][2]:.2f} |")
    print(f"Piper time to first audio median {statistics.median(firsts):.2f} s ({_load()})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.local_speech", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each utterance/reply (median shown)")
    asyncio.run(main(parser.parse_args().runs))
