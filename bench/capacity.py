"""Capacity: how many concurrent calls one agent process holds on one core, and its memory over a
soak at half that.

The agent runs pinned to core `AGENT_CPU` (`taskset -c 0`); the callers (this process) and the
provider fakes run pinned to `HARNESS_CPU`, so their CPU is not taken from the agent. Each target
gets a fresh process, one warm-up call, then one run per N of the sweep (N=1: two calls back to
back, so its p95 has a few turns behind it; larger N: one call per caller). An N holds when

- voice-to-voice p95 ≤ `P95_FACTOR` × the p95 at N=1,
- no caller turn was missed (no agent audio within the caller's answer timeout, 12 s),
- no caller turn was late (agent audio started more than `late_after` s after the caller stopped),
- no call failed.

Capacity is the largest N before the first N that does not hold; the sweep stops at that N. The
soak then runs a fresh pinned process at half capacity (at least 1) for `soak_seconds`, every
caller slot calling back to back, and reports median RSS of minute 2 against the last full minute
and RSS per call (last full minute's median above the idle RSS, over N).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

from bench.callers import run_calls
from bench.metrics import RunFigures, percentile
from bench.run import Options, ProviderProcess, measure_level, start_target

AGENT_CPU, HARNESS_CPU = "0", "1"
P95_FACTOR = 1.2
DEFAULT_SWEEP = (1, 5, 10, 20, 30, 50, 75)
DEFAULT_SOAK = 600.0


def shortfalls(run: RunFigures, base_p95: float | None, factor: float = P95_FACTOR) -> list[str]:
    """Why N does not hold (empty when it does)."""
    reasons = []
    p95 = run.p("v2v", 95)
    if p95 is None or base_p95 is None:
        reasons.append("no answered turn")
    elif p95 > factor * base_p95:
        reasons.append(f"v2v p95 {1000 * p95:.0f} ms > {factor:g}x N=1 ({1000 * base_p95:.0f} ms)")
    if run.unanswered:
        reasons.append(f"{run.unanswered} missed")
    if run.late:
        reasons.append(f"{run.late} late")
    if run.failed_calls:
        reasons.append(f"{run.failed_calls} calls failed")
    return reasons


def largest_holding(runs: Sequence[RunFigures], factor: float = P95_FACTOR) -> int | None:
    """The largest N before the first N that does not hold (None when N=1 does not)."""
    base = next((r for r in runs if r.n == 1), None)
    if base is None:
        return None
    base_p95 = base.p("v2v", 95)
    best = None
    for run in sorted(runs, key=lambda r: r.n):
        if shortfalls(run, base_p95, factor):
            break
        best = run.n
    return best


def soak_drift(run: RunFigures, soak_seconds: float) -> tuple[float, float] | None:
    """(median RSS of minute 2, median RSS of the last full minute) in bytes, when both exist."""
    last_minute = 60 * int(soak_seconds // 60)
    early = [rss for at, rss in run.rss_series if 60 <= at < 120]
    late = [rss for at, rss in run.rss_series if last_minute - 60 <= at < last_minute]
    if not early or not late or last_minute < 180:
        return None
    return percentile(early, 50) or 0.0, percentile(late, 50) or 0.0


def soak_rss_per_call(run: RunFigures, soak_seconds: float) -> float | None:
    """Bytes per call: the last full minute's median RSS above the idle RSS, over N."""
    drift = soak_drift(run, soak_seconds)
    if drift is None or run.rss_idle is None or not run.n:
        return None
    return (drift[1] - run.rss_idle) / run.n


async def sweep_target(name: str, providers: ProviderProcess, options: Options) -> list[RunFigures]:
    """The pinned sweep of one target, then its soak at half capacity."""
    runs: list[RunFigures] = []
    target = await asyncio.to_thread(start_target, name, providers.urls, options.workers, AGENT_CPU)
    try:
        await run_calls(1, target.plan_call, [], stagger=0.0)  # warm-up: imports, models, caches
        await asyncio.sleep(1.0)
        for n in sorted(options.capacity):
            run = await measure_level(
                target, providers, options, n, phase="capacity", rounds=2 if n == 1 else 1
            )
            runs.append(run)
            if n > 1 and largest_holding(runs) != n:
                break
    finally:
        await asyncio.to_thread(target.stop)
    if options.soak_seconds:
        half = max(1, (largest_holding(runs) or 1) // 2)
        target = await asyncio.to_thread(start_target, name, providers.urls, options.workers, AGENT_CPU)
        try:
            await run_calls(1, target.plan_call, [], stagger=0.0)
            await asyncio.sleep(1.0)
            until = time.monotonic() + options.soak_seconds
            runs.append(
                await measure_level(target, providers, options, half, phase="soak", rounds=1, until=until)
            )
        finally:
            await asyncio.to_thread(target.stop)
    return runs


async def run_capacity(options: Options) -> list[RunFigures]:
    """Sweep (and soak) every target, ours and stock on the same pinned fakes in one run."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(HARNESS_CPU)})  # the callers; the fakes are pinned by taskset
    providers = await asyncio.to_thread(ProviderProcess, options.latencies, HARNESS_CPU)
    runs: list[RunFigures] = []
    try:
        for name in options.targets:
            runs += await sweep_target(name, providers, options)
    finally:
        await asyncio.to_thread(providers.stop)
        os.sched_setaffinity(0, previous)
    return runs
