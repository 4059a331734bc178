"""How long the quick CLI commands take, wall clock, in fresh processes (prints; never asserts).

    .venv/bin/python -m bench.cli_startup [--runs 5]

Each command runs ``--runs`` times in an empty temporary directory with no provider keys (so
``doctor`` reports missing keys instead of calling providers); the median and the slowest run are
printed beside the load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = (["--help"], ["version"], ["config", "show"], ["doctor", "--timeout", "2"])


def time_command(args: list[str], cwd: str, runs: int) -> list[float]:
    """Wall-clock seconds of ``python -m phone_agent args``, one per run."""
    cleared = ("PHONE_AGENT_", "OPENAI_", "ELEVENLABS_", "TWILIO_", "DEEPGRAM_", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
    env["COLUMNS"] = "200"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "phone_agent", *args], cwd=cwd, env=env, capture_output=True, check=False
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as cwd:
        print(f"phone-agent CLI wall time, {runs} runs each (load average before: {os.getloadavg()})")
        for args in COMMANDS:
            times = time_command(args, cwd, runs)
            print(
                f"  {' '.join(args):24} median {statistics.median(times):.2f} s, slowest {max(times):.2f} s"
            )
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
