"""One benchmark run: start the provider fakes, then for each target bot start a fresh process,
place its first call (the cold call, measured on its own), warm the other workers, and run N
concurrent callers for each N, sampling the bot's CPU and memory; with `capacity`, a sweep on one
pinned core and a soak at half capacity follow (`bench/capacity.py`). Time comes only from here,
never from the test suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.callers import UTTERANCES, CallResult, run_call, run_calls, utterance_frames
from bench.loop_lag import late_shares, read_histogram
from bench.metrics import LATE_AFTER, RunFigures, figures
from bench.providers import Latencies
from bench.targets import (
    ROOT,
    ResourceSampler,
    Target,
    cores_busy_percent,
    cores_busy_seconds,
    harness_cpu_seconds,
    pinned,
    start_ours,
    start_stock,
)

TARGETS = ("stock", "ours")


@dataclass
class Options:
    targets: tuple[str, ...] = TARGETS
    calls: tuple[int, ...] = (1,)
    utterances: tuple[str, ...] = UTTERANCES
    latencies: Latencies = field(default_factory=Latencies)
    rounds: int = 4  # calls each caller places back to back (4: every shape meets every utterance)
    soak_seconds: float = 0.0
    stagger: float = 0.3
    warmup: bool = True
    quick: bool = False
    workers: int = 1  # phone-agent serve --workers
    late_after: float = LATE_AFTER
    latency_run: bool = True  # the cold call and the runs at `calls`
    capacity: tuple[int, ...] = ()  # N of the pinned capacity sweep (empty: no sweep)


@dataclass
class BenchResult:
    options: Options
    runs: list[RunFigures]  # every run: phase "cold", "latency", "capacity" or "soak"
    started: float
    finished: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    def phase(self, name: str) -> list[RunFigures]:
        return [r for r in self.runs if r.phase == name]


class ProviderProcess:
    """`python -m bench.providers` as a child process, driven over stdin/stdout."""

    def __init__(self, latencies: Latencies, cpus: str | None = None) -> None:
        self.process = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.providers", *latencies.as_args()], cpus),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.urls: dict[str, str] = self._read()["urls"]
        self._lock = threading.Lock()  # one dump at a time (targets measured side by side)

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("bench.providers exited before answering")
        return json.loads(line)

    def moments(self) -> dict[str, list[Any]]:
        assert self.process.stdin is not None
        with self._lock:
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
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_target(name: str, urls: dict[str, str], workers: int = 1, cpus: str | None = None) -> Target:
    if name == "stock":
        return start_stock(urls, cpus=cpus)
    if name == "ours":
        target = start_ours(urls, workers=workers, cpus=cpus)
        if workers > 1:
            target.name = f"ours-{workers}w"
        return target
    raise ValueError(f"unknown target {name!r}: choose from {', '.join(TARGETS)}")


async def measure_level(
    target: Target,
    providers: ProviderProcess,
    options: Options,
    n: int,
    *,
    phase: str,
    rounds: int,
    until: float | None = None,
) -> RunFigures:
    """N concurrent callers (each placing `rounds` calls, or calling until `until`), sampled."""
    sampler = ResourceSampler(target.process.pid)
    rss_idle = sampler.sample().rss
    harness = [os.getpid(), providers.process.pid]  # the callers and the fakes
    harness_before, started, cores_before = (
        harness_cpu_seconds(harness),
        time.monotonic(),
        cores_busy_seconds(),
    )
    lag_before = await asyncio.to_thread(read_histogram, target.port)
    sampler.start()
    calls: list[CallResult] = await run_calls(
        n,
        target.plan_call,
        utterance_frames(options.utterances),
        stagger=options.stagger,
        rounds=rounds,
        until=until,
        linger=not options.quick,
    )
    samples = await sampler.stop()
    harness_cpu = 100 * (harness_cpu_seconds(harness) - harness_before) / (time.monotonic() - started)
    moments = await asyncio.to_thread(providers.moments)
    run = figures(
        target.name, n, calls, moments, options.latencies, samples, rss_idle, late_after=options.late_after
    )
    run.phase, run.load, run.harness_cpu_percent = phase, os.getloadavg(), harness_cpu
    run.cores_busy = cores_busy_percent(cores_before, cores_busy_seconds())
    run.loop_lag = late_shares(lag_before, await asyncio.to_thread(read_histogram, target.port))
    await asyncio.sleep(0.0 if options.quick else 1.0)  # let the bot tidy up between runs
    return run


async def cold_call(target: Target, providers: ProviderProcess, options: Options) -> RunFigures:
    """The first call of a fresh process, speaking every utterance (as call number 0 does)."""
    plan = await target.plan_call(0)
    call = await run_call(0, plan, utterance_frames(options.utterances), linger=not options.quick)
    moments = await asyncio.to_thread(providers.moments)
    run = figures(target.name, 1, [call], moments, options.latencies, [], None, late_after=options.late_after)
    run.phase, run.load = "cold", os.getloadavg()
    await asyncio.sleep(0.0 if options.quick else 1.0)
    return run


async def measure_target(target: Target, providers: ProviderProcess, options: Options) -> list[RunFigures]:
    """The cold call, then (other workers warmed) one run per N."""
    runs = [await cold_call(target, providers, options)]
    if options.warmup and options.workers > 1:  # the other workers: imports, models, greeting cache
        await run_calls(2 * options.workers - 2, target.plan_call, [], stagger=0.1, linger=not options.quick)
        await asyncio.sleep(1.0)
    for n in options.calls:
        soak = 0.0 if options.capacity else options.soak_seconds  # with a sweep, it soaks on its own
        until = time.monotonic() + soak if soak else None
        phase = "soak" if until else "latency"
        runs.append(
            await measure_level(
                target, providers, options, n, phase=phase, rounds=options.rounds, until=until
            )
        )
    return runs


async def latency_runs(providers: ProviderProcess, options: Options) -> list[RunFigures]:
    """Each target in a fresh process, one after the other; `--quick` runs them side by side (a
    smoke run that proves figures come out, in half the time, not a measurement)."""

    async def fresh(name: str) -> list[RunFigures]:
        target = await asyncio.to_thread(start_target, name, providers.urls, options.workers)
        try:
            return await measure_target(target, providers, options)
        finally:
            await asyncio.to_thread(target.stop)

    if options.quick:
        return [run for runs in await asyncio.gather(*map(fresh, options.targets)) for run in runs]
    return [run for name in options.targets for run in await fresh(name)]


async def run_bench(options: Options) -> BenchResult:
    """The latency run of every target, then the capacity sweep and soak when asked for."""
    from bench.capacity import run_capacity  # it builds on this module

    started = time.time()
    load_before = os.getloadavg()
    runs: list[RunFigures] = []
    if options.latency_run:
        providers = await asyncio.to_thread(ProviderProcess, options.latencies)
        try:
            runs += await latency_runs(providers, options)
        finally:
            await asyncio.to_thread(providers.stop)
    if options.capacity:
        runs += await run_capacity(options)
    return BenchResult(options, runs, started, time.time(), load_before, os.getloadavg())
