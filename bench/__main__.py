"""`python -m bench`: run the benchmark and write the report under bench/results/.

python -m bench --quick                      # smoke run under a minute: N=1, one utterance
python -m bench                              # cold call + N=1: v2v per reply shape, ours vs stock
python -m bench --capacity                   # + pinned capacity sweep 1..75 and a 10-min soak at half
python -m bench --capacity 1,5,10 --soak 0 --skip-latency
python -m bench --targets ours --calls 50 --soak 600 --label soak
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.callers import UTTERANCES
from bench.capacity import DEFAULT_SOAK, DEFAULT_SWEEP
from bench.metrics import LATE_AFTER
from bench.providers import Latencies
from bench.report import write_report
from bench.run import TARGETS, Options, run_bench

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_UTTERANCE = "Can you tell me your opening hours on Saturday?"


def parse_options(argv: list[str] | None = None) -> tuple[Options, Path, str]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run under a minute (N=1, one utterance)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {', '.join(TARGETS)}")
    parser.add_argument("--calls", default="1", help="comma list of concurrent call counts, e.g. 1,5,10")
    parser.add_argument(
        "--capacity",
        nargs="?",
        const=",".join(map(str, DEFAULT_SWEEP)),
        default="",
        help=f"pinned capacity sweep over these N (default {','.join(map(str, DEFAULT_SWEEP))}), then a soak",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        help=f"soak seconds: with --capacity at half capacity (default {DEFAULT_SOAK:g}, 0 = none), "
        "else every caller slot of --calls keeps calling this long",
    )
    parser.add_argument("--skip-latency", action="store_true", help="no cold call / latency runs")
    parser.add_argument(
        "--late", type=float, default=LATE_AFTER, help="seconds after which a reply counts as late"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes for ours (serve --workers)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="calls each caller places back to back (4: every shape meets every utterance)",
    )
    parser.add_argument("--stagger", type=float, default=0.3, help="seconds between caller starts")
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    parser.add_argument("--label", default="latest", help="report file name (without extension)")
    Latencies.add_arguments(parser)
    args = parser.parse_args(argv)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    calls = tuple(int(n) for n in args.calls.split(","))
    capacity = () if args.quick else tuple(int(n) for n in args.capacity.split(",") if n.strip())
    soak = args.soak if args.soak is not None else (DEFAULT_SOAK if capacity else 0.0)
    latencies = Latencies.from_arguments(args)
    options = Options(
        targets=targets,
        calls=(1,) if args.quick else calls,
        utterances=(QUICK_UTTERANCE,) if args.quick else UTTERANCES,
        latencies=latencies,
        rounds=1 if args.quick else args.rounds,
        soak_seconds=soak,
        stagger=args.stagger,
        quick=args.quick,
        workers=args.workers,
        late_after=args.late,
        latency_run=not args.skip_latency,
        capacity=capacity,
    )
    return options, args.out, args.label


def main(argv: list[str] | None = None) -> int:
    options, out, label = parse_options(argv)
    result = asyncio.run(run_bench(options))
    paths = write_report(result, out, label)
    sys.stdout.write(paths["md"].read_text())
    sys.stdout.write(f"\nwritten: {', '.join(str(p) for p in paths.values())}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
