"""Overload (issue 12): with ``max_calls_per_worker=5`` one process holds five calls; a sixth that
rings while they run gets the overflow TwiML (an apology and the fallback action, no stream), and
the five keep their voice-to-voice within ``P95_FACTOR`` × one call alone. Prints the figures.

```bash
.venv/bin/python -m bench.overload                 # agent pinned to core 0, callers and fakes to core 1
.venv/bin/python -m bench.overload --no-pin --max-calls 5
```

Same fakes, callers and v2v measure as ``python -m bench`` (``bench/run.py``): one fresh
``phone-agent serve``, one warm-up call, one call alone (two back to back), then the five at once
(0.3 s apart) with the sixth webhook sent once all five streams are up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import xml.etree.ElementTree as ET
from typing import Any

from bench.callers import run_calls
from bench.capacity import AGENT_CPU, HARNESS_CPU, P95_FACTOR, shortfalls
from bench.metrics import RunFigures
from bench.run import Options, ProviderProcess, measure_level
from bench.targets import OurTarget, start_ours

STREAMS_UP_SECS = 4.0  # after the five started: every stream is open and past its greeting


def answer_kind(twiml: str) -> str:
    """What a /phone/incoming answer does: ``stream``, or the fallback verbs it holds."""
    root = ET.fromstring(twiml)
    if root.find("./Connect/Stream") is not None:
        return "stream"
    verbs = [child.tag for child in root]
    return " + ".join(f"<{verb}>" for verb in verbs) or "empty"


def refusals(log: list[str]) -> dict[str, int]:
    """Why the agent turned calls away, from its log: at capacity, or its event loop running late."""
    counts: dict[str, int] = {}
    for text in log:
        if "call not taken:" in text or "call handed over" in text:
            where = "webhook" if "call not taken:" in text else "stream start"
            why = (
                "event loop late"
                if "event loop" in text
                else "at capacity"
                if "capacity" in text
                else "other"
            )
            counts[f"{why} ({where})"] = counts.get(f"{why} ({where})", 0) + 1
    return counts


def line(label: str, run: RunFigures) -> str:
    p50, p95 = run.p("v2v", 50), run.p("v2v", 95)
    shown = " ".join(f"{name} {1000 * value:.0f} ms" for name, value in (("p50", p50), ("p95", p95)) if value)
    return (
        f"{label:<18} v2v {shown or 'no answered turn'} ({len(run.v2v)} turns; "
        f"{run.unanswered} missed, {run.late} late, {run.failed_calls} failed calls)"
    )


async def run_overload(max_calls: int, pin: bool) -> dict[str, Any]:
    """The whole scenario; returns the figures it printed."""
    options = Options(targets=("ours",))
    previous = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {int(HARNESS_CPU)})
    load_before = os.getloadavg()
    providers = await asyncio.to_thread(ProviderProcess, options.latencies, HARNESS_CPU if pin else None)
    env = {"PHONE_AGENT_MAX_CALLS_PER_WORKER": str(max_calls)}
    target: OurTarget = await asyncio.to_thread(
        start_ours, providers.urls, extra_env=env, cpus=AGENT_CPU if pin else None
    )
    try:
        await run_calls(1, target.plan_call, [], stagger=0.0)  # warm-up: imports, models, caches
        alone = await measure_level(target, providers, options, 1, phase="overload", rounds=2)
        full = asyncio.create_task(
            measure_level(target, providers, options, max_calls, phase="overload", rounds=1)
        )
        await asyncio.sleep(options.stagger * max_calls + STREAMS_UP_SECS)
        extra_twiml, _ = await target.incoming(10_000)
        at_capacity = await full
        after_twiml, _ = await target.incoming(10_001)  # the five have ended: room again
    finally:
        turned_away = refusals(target.log)
        await asyncio.to_thread(target.stop)
        await asyncio.to_thread(providers.stop)
        os.sched_setaffinity(0, previous)
    base_p95, p95 = alone.p("v2v", 95), at_capacity.p("v2v", 95)
    ratio = p95 / base_p95 if p95 and base_p95 else None
    problems = shortfalls(at_capacity, base_p95)
    where = f"pinned to core {AGENT_CPU}" if pin else "unpinned"
    print(f"overload: max_calls_per_worker={max_calls}, agent {where}")
    print(line("1 call alone", alone))
    print(line(f"{max_calls} calls at once", at_capacity))
    print(
        f"p95 ratio          {ratio:.2f}x (holds when ≤ {P95_FACTOR:g}x)" if ratio else "p95 ratio          -"
    )
    print(f"call {max_calls + 1} (while full)   {answer_kind(extra_twiml)}")
    print(f"call after they end {answer_kind(after_twiml)}")
    print("calls turned away  " + (", ".join(f"{k}: {v}" for k, v in turned_away.items()) or "none"))
    if answer_kind(extra_twiml) == "stream":
        problems.append(f"call {max_calls + 1} was connected")
    print("holds: " + ("yes" if not problems else "no (" + "; ".join(problems) + ")"))
    load_after = os.getloadavg()
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}, after "
          f"{' '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} cores)")  # fmt: skip
    return {"alone_p95": base_p95, "full_p95": p95, "ratio": ratio, "sixth": answer_kind(extra_twiml)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overload", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-calls", type=int, default=5, help="max_calls_per_worker of the agent (default 5)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the agent and the harness to cores")
    args = parser.parse_args(argv)
    asyncio.run(run_overload(args.max_calls, pin=not args.no_pin))


if __name__ == "__main__":
    main()
