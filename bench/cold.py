"""The first call of a fresh process, again and again (issue 14): is it as quick as a later call?

```bash
.venv/bin/python -m bench.cold                # one deployment restarted 5 times
.venv/bin/python -m bench.cold --new-install  # 5 new installs (empty data directory each)
.venv/bin/python -m bench.cold --runs 3 --utterances 1
```

The provider fakes' process starts once; then every run is a fresh ``phone-agent serve``: by default
the same deployment restarted (one data directory and database kept across the runs, as a deploy
or a crash restarts a process: run 1 is its first process ever), with ``--new-install`` an empty
data directory each time (as ``python -m bench`` starts it). Per run: the time from spawning the
process to its first ``/health`` answer (start-up), then its first call (cold) and one call right
after it (warm),
both speaking the same utterances from the same first one, so turn 1 has the same reply shape in
both. Per run: greeting cold and warm, turn 1 cold and warm and their difference, and where turn 1's
time went (end-of-turn wait, STT, LLM and TTS legs, as ``bench/metrics.py`` splits it); then the
medians. A single cold call is one sample; several fresh processes tell a warm-up cost from noise.
Prints Markdown (never passes or fails on time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.callers import UTTERANCES, CallResult, run_call, utterance_frames
from bench.metrics import break_down
from bench.providers import Latencies
from bench.report_sections import load_text
from bench.run import ProviderProcess
from bench.targets import OurTarget, start_ours

LEGS = ("eot_wait", "stt_leg", "llm_leg", "tts_leg")


@dataclass
class CallFigures:
    """One call's webhook answer, stream connect, greeting and first turn (seconds), and turn 1's legs
    where they could be told apart."""

    webhook: float
    connect: float | None
    greeting: float | None
    turn1: float | None
    legs: dict[str, float]
    error: str | None


@dataclass
class ColdRun:
    startup: float
    cold: CallFigures
    warm: CallFigures
    load: tuple[float, float, float]


def call_figures(
    call: CallResult, providers: ProviderProcess, latencies: Latencies, webhook: float, dialled: float
) -> CallFigures:
    """The greeting and turn 1 of ``call`` (dialled at ``dialled``), turn 1 split into legs by the
    fakes' moments."""
    legs: dict[str, float] = {}
    turn1 = call.turns[0].voice_to_voice if call.turns else None
    if call.turns and call.turns[0].speech_ended is not None and call.turns[0].first_agent_audio is not None:
        moments = providers.moments()
        stt, llm, tts = (sorted(moments.get(k, [])) for k in ("stt", "llm", "tts"))
        split = break_down(
            call.turns[0].speech_ended, call.turns[0].first_agent_audio, stt, llm, tts, latencies
        )
        legs = {leg: value for leg in LEGS if (value := getattr(split, leg)) is not None}
    connect = None if call.started_at is None else call.started_at - dialled
    return CallFigures(webhook, connect, call.greeting_latency, turn1, legs, call.error)


async def one_run(
    providers: ProviderProcess,
    latencies: Latencies,
    utterances: tuple[str, ...],
    data_dir: Path | None,
    number: int,
) -> ColdRun:
    """A fresh process (on `data_dir`, or a new one): its start-up, its first call, then one more."""
    started = time.monotonic()
    target: OurTarget = await asyncio.to_thread(start_ours, providers.urls, data_dir=data_dir)
    target.placed = 100 * number  # CallSids never repeat in one database (a repeat is refused)
    startup = time.monotonic() - started
    try:
        frames = utterance_frames(utterances)
        calls = []
        for _ in range(2):
            rang = time.monotonic()
            plan = await target.plan_call(0)  # the webhook, as Twilio sends it
            dialled = time.monotonic()
            call = await run_call(0, plan, frames)
            webhook = dialled - rang
            calls.append(await asyncio.to_thread(call_figures, call, providers, latencies, webhook, dialled))
            await asyncio.sleep(1.0)  # let the call's records close, as between the bench's runs
    finally:
        await asyncio.to_thread(target.stop)
    return ColdRun(startup, calls[0], calls[1], os.getloadavg())


def ms(value: float | None) -> str:
    return "—" if value is None else f"{1000 * value:.0f}"


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _pairs(runs: list[ColdRun]) -> list[str]:
    """The webhook, connect, greeting and turn 1 cells (medians over ``runs``)."""

    def cold_warm(figure: str) -> list[float | None]:
        return [_median([getattr(getattr(r, side), figure) for r in runs]) for side in ("cold", "warm")]

    webhook, connect, greeting, turn1 = (cold_warm(f) for f in ("webhook", "connect", "greeting", "turn1"))
    delta = _median([_delta(r.cold.turn1, r.warm.turn1) for r in runs])
    return [
        f"{ms(webhook[0])} / {ms(webhook[1])}",
        f"{ms(connect[0])} / {ms(connect[1])}",
        ms(greeting[0]),
        ms(greeting[1]),
        ms(turn1[0]),
        ms(turn1[1]),
        ms(delta),
    ]


def report(runs: list[ColdRun], load_before: tuple[float, float, float], new_install: bool) -> str:
    """The Markdown table of every run and the medians."""
    kind = "each a new install (empty data directory)" if new_install else "one deployment restarted"
    lines = [
        f"Fresh processes: {len(runs)}, {kind}; load average before {load_text(load_before)}.",
        "",
        "| run | start-up s | webhook cold / warm | connect cold / warm | greeting cold | greeting warm "
        "| turn 1 cold | turn 1 warm | turn 1 cold − warm | legs cold (eot/stt/llm/tts) | legs warm "
        "| load after |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|",
    ]
    for i, run in enumerate(runs, start=1):
        legs = ["/".join(ms(c.legs.get(leg)) for leg in LEGS) for c in (run.cold, run.warm)]
        errors = "; ".join(e for e in (run.cold.error, run.warm.error) if e)
        cells = [
            f"{run.startup:.2f}",
            *_pairs([run]),
            *legs,
            load_text(run.load) + (f" ({errors})" if errors else ""),
        ]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    startup = _median([r.startup for r in runs])
    lines.append(f"| median | {startup:.2f} | " + " | ".join(_pairs(runs)) + " | | | |")
    lines += [
        "",
        "Times in ms (start-up in s: spawn → first /health answer). Webhook = the signed POST "
        "/phone/incoming until its TwiML answer (Twilio connects the stream only then); connect = the "
        "stream's websocket opened and its start sent; greeting = start sent → first agent audio at "
        "the caller; turn 1 = the caller's last speech frame → first agent audio.",
    ]
    return "\n".join(lines) + "\n"


async def run_cold(runs: int, utterances: tuple[str, ...], *, new_install: bool = False) -> str:
    latencies = Latencies()
    load_before = os.getloadavg()
    providers = await asyncio.to_thread(ProviderProcess, latencies)
    try:
        with tempfile.TemporaryDirectory(prefix="phone-agent-cold-") as kept:
            data_dir = None if new_install else Path(kept)
            results = [await one_run(providers, latencies, utterances, data_dir, i) for i in range(runs)]
    finally:
        await asyncio.to_thread(providers.stop)
    return report(results, load_before, new_install)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cold", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes, one after the other")
    parser.add_argument(
        "--utterances", type=int, default=2, help=f"utterances per call (1-{len(UTTERANCES)}), from the first"
    )
    parser.add_argument("--new-install", action="store_true", help="an empty data directory for every run")
    args = parser.parse_args(argv)
    utterances = UTTERANCES[: max(1, args.utterances)]
    print(asyncio.run(run_cold(args.runs, utterances, new_install=args.new_install)), end="")


if __name__ == "__main__":
    main()
