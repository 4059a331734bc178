"""One benchmark run: start the provider fakes, then for each target bot start it, warm it up with
one call, and run N concurrent callers for each N, sampling the bot's CPU and memory; then the
figures. Time comes only from here, never from the test suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.callers import UTTERANCES, CallResult, run_calls, utterance_frames
from bench.metrics import RunFigures, figures
from bench.providers import DEFAULT_REPLY, Latencies
from bench.targets import ROOT, ResourceSampler, Target, start_ours, start_stock

TARGETS = ("stock", "ours")


@dataclass
class Options:
    targets: tuple[str, ...] = TARGETS
    calls: tuple[int, ...] = (1,)
    utterances: tuple[str, ...] = UTTERANCES
    latencies: Latencies = field(default_factory=Latencies)
    reply: str = DEFAULT_REPLY
    rounds: int = 2  # calls each caller places back to back (more turns for the percentiles)
    soak_seconds: float = 0.0
    stagger: float = 0.3
    warmup: bool = True
    quick: bool = False
    workers: int = 1  # phone-agent serve --workers


@dataclass
class BenchResult:
    options: Options
    runs: list[RunFigures]
    started: float
    finished: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


class ProviderProcess:
    """`python -m bench.providers` as a child process, driven over stdin/stdout."""

    def __init__(self, latencies: Latencies, reply: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.providers", *latencies.as_args(), "--reply", reply],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.urls: dict[str, str] = self._read()["urls"]

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("bench.providers exited before answering")
        return json.loads(line)

    def moments(self) -> dict[str, list[float]]:
        assert self.process.stdin is not None
        self.process.stdin.write("dump\n")
        self.process.stdin.flush()
        return self._read()  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def start_target(name: str, urls: dict[str, str], workers: int = 1) -> Target:
    if name == "stock":
        return start_stock(urls)
    if name == "ours":
        target = start_ours(urls, workers=workers)
        if workers > 1:
            target.name = f"ours-{workers}w"
        return target
    raise ValueError(f"unknown target {name!r}: choose from {', '.join(TARGETS)}")


async def measure_target(target: Target, providers: ProviderProcess, options: Options) -> list[RunFigures]:
    """Warm the bot up, then one run per N."""
    frames = utterance_frames(options.utterances)
    if options.warmup:  # imports, model files and connections are warm before anything is timed
        await run_calls(  # one call per worker, each hearing the whole greeting (fills its caches)
            2 * options.workers - 1, target.plan_call, [], stagger=0.1, linger=not options.quick
        )
    await asyncio.sleep(1.0)
    sampler = ResourceSampler(target.process.pid)
    runs = []
    for n in options.calls:
        rss_idle = sampler.sample().rss
        sampler.start()
        until = time.monotonic() + options.soak_seconds if options.soak_seconds else None
        calls: list[CallResult] = await run_calls(
            n,
            target.plan_call,
            frames,
            stagger=options.stagger,
            rounds=options.rounds,
            until=until,
            linger=not options.quick,
        )
        samples = await sampler.stop()
        moments = await asyncio.to_thread(providers.moments)
        runs.append(figures(target.name, n, calls, moments, options.latencies, samples, rss_idle))
        await asyncio.sleep(1.0)  # let the bot tidy up between runs
    return runs


async def run_bench(options: Options) -> BenchResult:
    """Run every target at every N with the same fakes and callers."""
    started = time.time()
    load_before = os.getloadavg()
    providers = await asyncio.to_thread(ProviderProcess, options.latencies, options.reply)
    runs: list[RunFigures] = []
    try:
        for name in options.targets:
            target = await asyncio.to_thread(start_target, name, providers.urls, options.workers)
            try:
                runs += await measure_target(target, providers, options)
            finally:
                await asyncio.to_thread(target.stop)
    finally:
        await asyncio.to_thread(providers.stop)
    return BenchResult(options, runs, started, time.time(), load_before, os.getloadavg())
