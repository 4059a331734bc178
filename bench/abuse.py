"""Abuse (issue 13): a live call beside a Media Stream fuzz, and the agent's memory after abuse.

```bash
.venv/bin/python -m bench.abuse                   # agent pinned to core 0, callers, fuzz and fakes to core 1
.venv/bin/python -m bench.abuse --no-pin --min-messages 5000
.venv/bin/python -m bench.abuse --quick --out /tmp/abuse.md   # smoke run (tests/bench): tiny, no RSS part
```

1. **Fuzz beside a live call**: one fresh ``phone-agent serve`` on the bench's fakes; one warm-up
   call; one normal call alone (``--rounds`` calls back to back, v2v as ``python -m bench``
   measures it); then the same call again while another process (``bench/fuzz.py``) sends at least
   ``--min-messages`` abusive messages on other connections, and ``/health`` is asked every 250 ms.
   Prints v2v p50/p95 alone and during the fuzz, their ratio (holds at ≤ 1.5x), whether the agent
   stayed up, ``/health`` round trips, the messages sent per category and how the server answered.
2. **Memory after abuse**: a second fresh process; RSS idle after a warm-up call, then
   ``--abuse-rounds`` rounds of abuse (fuzz rounds, bad-token connections, calls dropped
   mid-greeting, a few normal calls), each followed by RSS sampled every second for up to
   ``SETTLE_SECS`` (holds within 10 % of idle; the growth between rounds tells a leak from a
   high-water mark).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import statistics
import subprocess
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx

from bench.callers import UTTERANCES, run_calls, utterance_frames
from bench.capacity import AGENT_CPU, HARNESS_CPU
from bench.fuzz import Tally, abuse_round, abuse_until, raw_connection, start_message
from bench.metrics import percentile
from bench.overload import line
from bench.run import Options, ProviderProcess, measure_level
from bench.targets import ROOT, OurTarget, ResourceSampler, start_ours

V2V_FACTOR = 1.5  # the bound: the live call's v2v p95 during the fuzz vs alone
RSS_FACTOR = 1.10  # RSS after abuse vs idle
SETTLE_SECS = 45.0
IDLE_SECS = 15.0  # past the heap trim after the warm-up call
MB = 1 << 20


def fuzz_in_process(
    port: int, auth_token: str, account_sid: str, seconds: float, minimum: int, flood: int
) -> Tally:
    """``abuse_until`` in a process of its own (the live call's harness keeps its event loop)."""
    target = OurTarget("fuzz", cast(Any, None), port, auth_token=auth_token, account_sid=account_sid)
    deadline = time.monotonic() + seconds
    return asyncio.run(abuse_until(target.plan_call, deadline, minimum, flood_count=flood))


async def sample_health(base_url: str, stop: asyncio.Event) -> list[float | None]:
    """``/health`` round trips (seconds; None for an error or a timeout) every 250 ms until `stop`."""
    trips: list[float | None] = []
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                ok = (await client.get(base_url + "/health")).status_code < 500
            except httpx.HTTPError:
                ok = False
            trips.append(time.monotonic() - began if ok else None)
            await asyncio.sleep(0.25)
    return trips


async def fuzz_beside_call(providers: ProviderProcess, options: Options, pin: bool, args: Any) -> list[str]:
    """Part 1; returns the report's lines."""
    target = await asyncio.to_thread(start_ours, providers.urls, cpus=AGENT_CPU if pin else None)
    try:
        await run_calls(1, target.plan_call, [], stagger=0.0, linger=not options.quick)  # warm-up
        began = time.monotonic()
        alone = await measure_level(target, providers, options, 1, phase="alone", rounds=args.rounds)
        seconds = time.monotonic() - began
        stop = asyncio.Event()
        health = asyncio.create_task(sample_health(target.base_url, stop))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            fuzz = asyncio.get_running_loop().run_in_executor(
                pool, fuzz_in_process, target.port, target.auth_token, target.account_sid,
                seconds, args.min_messages, args.flood,
            )  # fmt: skip
            during = await measure_level(target, providers, options, 1, phase="fuzz", rounds=args.rounds)
            tally = await fuzz
        stop.set()
        trips = await health
        alive = target.process.poll() is None
        async with httpx.AsyncClient(timeout=10) as client:
            health_after = (await client.get(target.base_url + "/health")).status_code if alive else None
    finally:
        log = list(target.log)
        await asyncio.to_thread(target.stop)
    base_p95, p95 = alone.p("v2v", 95), during.p("v2v", 95)
    ratio = p95 / base_p95 if p95 and base_p95 else None
    answered = [t for t in trips if t is not None]
    lines = [
        f"fuzz beside a live call: agent {'pinned to core ' + AGENT_CPU if pin else 'unpinned'}",
        line("live call alone", alone),
        line("during the fuzz", during),
        f"v2v p95 ratio      {ratio:.2f}x (holds when ≤ {V2V_FACTOR:g}x)"
        if ratio
        else "v2v p95 ratio      -",
        f"agent alive after  {'yes' if alive else 'NO (exit ' + str(target.process.returncode) + ')'}, "
        f"/health after: {health_after}",
        f"/health during     {len(answered)}/{len(trips)} answered, p50 {ms(percentile(answered, 50))}, "
        f"p95 {ms(percentile(answered, 95))}, max {ms(max(answered, default=None))}",
        f"messages sent      {tally.total} on {tally.connections} connections",
        "",
        "| category | messages | server's answer (connections) |",
        "|---|---:|---|",
    ]
    for category in sorted(set(tally.sent) | set(tally.answers)):
        answers = ", ".join(f"{a}: {n}" for a, n in sorted(tally.answers.get(category, Counter()).items()))
        lines.append(f"| {category} | {tally.sent[category]} | {answers} |")
    lines += ["", "server log: " + logged_refusals(log)]
    problems = [] if alive else ["the agent died"]
    if not ratio or ratio > V2V_FACTOR:
        problems.append(f"v2v p95 ratio {ratio:.2f}x" if ratio else "no v2v figure")
    if during.failed_calls or during.unanswered:
        problems.append("the live call missed turns or failed")
    lines.append("holds: " + ("yes" if not problems else "no (" + "; ".join(problems) + ")"))
    return lines


def ms(seconds: float | None) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds is not None else "-"


def logged_refusals(log: list[str]) -> str:
    """What the agent logged about the junk: refusals by reason and the kinds of ignored messages."""
    counts: Counter[str] = Counter()
    for text in log:
        if "media stream refused:" in text:
            counts["refused: " + text.split("media stream refused:", 1)[1].strip()[:60]] += 1
        elif "media stream: ignoring" in text:
            counts["ignoring " + text.split("ignoring", 1)[1].split(" (")[0].split(" [")[0].strip()] += 1
        elif "Traceback" in text:
            counts["tracebacks"] += 1
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())) or "nothing"


async def settle(sampler: ResourceSampler, seconds: float, within: float | None = None) -> list[int]:
    """RSS every second for `seconds` (stops early once 5 samples in a row are ≤ `within` bytes)."""
    samples: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append((await asyncio.to_thread(sampler.sample)).rss)
        if within is not None and len(samples) >= 5 and all(s <= within for s in samples[-5:]):
            break
        await asyncio.sleep(1.0)
    return samples


async def abuse_once(target: OurTarget, base: int, args: Any) -> Tally:
    """One round of abuse at once: fuzz rounds, bad-token connections, dropped calls, normal calls."""
    tally = Tally()
    plan = await target.plan_call(base)
    abrupt = [await target.plan_call(base + 100 + i) for i in range(args.abrupt)]
    dropped = "call dropped mid-greeting"
    await asyncio.gather(
        *(abuse_round(target.plan_call, base + 1000 + 5 * i, tally, flood_count=args.flood)
          for i in range(2)),
        *(raw_connection(plan.ws_url, [start_message(plan, token=f"bad{i}")], tally, "bad token")
          for i in range(args.bad_tokens)),
        *(raw_connection(p.ws_url, [start_message(p)], tally, dropped, abort_after_reply=True)
          for p in abrupt),
        run_calls(3, target.plan_call, utterance_frames(UTTERANCES[:2]), stagger=0.3),
    )  # fmt: skip
    return tally


async def rss_after_abuse(providers: ProviderProcess, pin: bool, args: Any) -> list[str]:
    """Part 2; returns the report's lines."""
    info = {"PHONE_AGENT_LOG_LEVEL": "INFO"}  # its heap trims are logged at INFO
    target = await asyncio.to_thread(
        start_ours, providers.urls, extra_env=info, cpus=AGENT_CPU if pin else None
    )
    sampler = ResourceSampler(target.process.pid)
    lines, settled = ["RSS after abuse (agent process tree)"], []
    try:
        # warm-up: a normal call with turns (STT, LLM, TTS and smart-turn used once), as in the rounds
        await run_calls(1, target.plan_call, utterance_frames(UTTERANCES[:2]), stagger=0.0)
        idle = int(statistics.median((await settle(sampler, IDLE_SECS))[-5:]))
        lines.append(f"idle (after a warm-up call)  {idle / MB:.0f} MB")
        for round_ in range(1, args.abuse_rounds + 1):
            peak = ResourceSampler(target.process.pid, interval=1.0)
            peak.start()
            began = time.monotonic()
            tally = await abuse_once(target, 200_000 * round_, args)
            abuse_secs = time.monotonic() - began
            high = max(s.rss for s in await peak.stop())
            after = await settle(sampler, SETTLE_SECS, within=int(idle * RSS_FACTOR))
            settled.append(after[-1])
            back = next((i + 1 for i, s in enumerate(after) if s <= idle * RSS_FACTOR), None)
            lines += [
                f"abuse round {round_}                {abuse_secs:.0f} s, {tally.total} messages on "
                f"{tally.connections} connections + 3 normal calls; peak {high / MB:.0f} MB",
                f"  after, settled             {after[-1] / MB:.0f} MB = {after[-1] / idle:.2f}x idle after "
                f"{len(after)} s" + (f" (within 10 % after {back} s)" if back else " (not within 10 %)"),
                f"  RSS samples (MB)           {' '.join(f'{s / MB:.0f}' for s in after)}",
            ]
        alive = target.process.poll() is None
    finally:
        trims = [text.split("heap trimmed", 1)[1].strip() for text in target.log if "heap trimmed" in text]
        await asyncio.to_thread(target.stop)
    if len(settled) > 1:
        lines.append(f"growth round 1 → {len(settled)}    {(settled[-1] - settled[0]) / MB:+.1f} MB")
    lines += [f"agent log: heap trimmed {trim}" for trim in trims]
    holds = alive and all(s <= idle * RSS_FACTOR for s in settled)
    return [*lines, "holds: " + ("yes" if holds else "no")]


def uptime() -> str:
    """`uptime`'s line: the load average beside every figure."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "?"


async def run_abuse(args: Any) -> str:
    """Both parts; returns the Markdown report (also printed)."""
    pin = not args.no_pin
    quick_words = UTTERANCES[:1] if args.quick else UTTERANCES
    options = Options(targets=("ours",), utterances=quick_words, quick=args.quick)
    previous = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {int(HARNESS_CPU)})
    before = await asyncio.to_thread(uptime)
    providers = await asyncio.to_thread(ProviderProcess, options.latencies, HARNESS_CPU if pin else None)
    try:
        lines = await fuzz_beside_call(providers, options, pin, args) if args.part != "rss" else []
        if not args.quick and args.part != "fuzz":
            lines += ["", *await rss_after_abuse(providers, pin, args)]
    finally:
        await asyncio.to_thread(providers.stop)
        os.sched_setaffinity(0, previous)
    after, measured = await asyncio.to_thread(uptime), await asyncio.to_thread(commit)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = f"# Abuse (issue 13): python -m bench.abuse, {when}, commit {measured}"
    return "\n".join(
        [head, "", "```", *lines, f"uptime before: {before}", f"uptime after:  {after}", "```", ""]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--min-messages", type=int, default=5000, help="abusive messages at least (default 5000)"
    )
    parser.add_argument("--flood", type=int, default=1500, help="messages in each flood call (default 1500)")
    parser.add_argument("--rounds", type=int, default=2, help="live calls back to back per phase (default 2)")
    parser.add_argument("--bad-tokens", type=int, default=50, help="bad-token connections in part 2")
    parser.add_argument("--abuse-rounds", type=int, default=2, help="abuse rounds in part 2 (default 2)")
    parser.add_argument("--abrupt", type=int, default=5, help="calls dropped mid-greeting in part 2")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the agent and the harness to cores")
    parser.add_argument("--part", choices=("fuzz", "rss", "both"), default="both", help="which part to run")
    parser.add_argument("--quick", action="store_true", help="smoke run: one utterance, no RSS part")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "abuse.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    report = asyncio.run(run_abuse(args))
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
