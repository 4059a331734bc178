"""`python -m bench.vad_cpu`: CPU of Silero VAD for N calls at once, every window scored or gated.

Feeds N batched analyzers (voice/vad_batch.py) the caller's side of a whole call (espeak-ng
utterances, each followed by 3 s of quiet while the agent would answer), real-time paced in 20 ms
frames, staggered, and prints the process's CPU seconds and % of a core with the volume gate off
(every window scored, as Pipecat) and on (windows below ``min_volume`` not scored). CPU is the
process's own (user + system), so other load on the machine changes it less than wall-time
figures; the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

from pipecat.audio.vad.vad_analyzer import VADParams
from tests.fakes.audio import read_ulaw, speech_wav, ulaw_to_pcm16

from phone_agent.voice.shared_models import SILERO_MODEL, _one_thread_options, _session
from phone_agent.voice.vad_batch import BatchedSileroVADAnalyzer, SileroBatcher

UTTERANCES = (
    "Hi there, I would like to book an appointment for next Tuesday.",
    "Tomorrow at ten please.",
    "Can you tell me your opening hours on Saturday?",
    "Thanks, that is all.",
)
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit PCM
QUIET_FRAMES = 150  # 3 s after each utterance


def caller_frames() -> list[bytes]:
    """The caller's side of one call, in 20 ms frames of 8 kHz PCM."""
    quiet = b"\x00" * FRAME_BYTES
    audio = quiet * 20
    for text in UTTERANCES:
        audio += ulaw_to_pcm16(read_ulaw(speech_wav(text))) + quiet * QUIET_FRAMES
    return [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(calls: int, *, volume_gate: bool) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, windows scored) for ``calls`` calls at once."""
    batcher = SileroBatcher(_session(SILERO_MODEL, _one_thread_options()))
    frames = caller_frames()

    async def call(index: int) -> None:
        params = VADParams(stop_secs=0.2)
        analyzer = BatchedSileroVADAnalyzer(batcher=batcher, params=params, volume_gate=volume_gate)
        analyzer.set_sample_rate(8000)
        await asyncio.sleep(index * 0.013)  # callers do not start in step
        due = time.monotonic()
        for frame in frames:
            await analyzer.analyze_audio(frame)
            due += 0.02
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    cpu, started = cpu_seconds(), time.monotonic()
    try:
        await asyncio.gather(*(call(i) for i in range(calls)))
    finally:
        batcher.close()
    return cpu_seconds() - cpu, time.monotonic() - started, batcher.rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args()
    for _ in range(args.repeat):
        for gate in (False, True):
            cpu, wall, rows = await run(args.calls, volume_gate=gate)
            print(
                f"{args.calls} calls, volume gate {'on ' if gate else 'off'}:"
                f" CPU {cpu:.2f} s over {wall:.1f} s"
                f" = {100 * cpu / wall:.1f} % of a core ({100 * cpu / wall / args.calls:.2f} %/call),"
                f" {rows} windows scored; load {' / '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )


if __name__ == "__main__":
    asyncio.run(main())
