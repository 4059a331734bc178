"""The bots under test, each run as a subprocess on an ephemeral port, and a resource sampler.

`stock`: `bench/stock_bot.py` (Pipecat's Twilio example, same services, same fakes).
`ours`: `phone-agent serve` (all roles in one process) with every provider URL on the fakes.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from bench.callers import CallPlan

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"LISTENING (\d+)")


@dataclass
class Target:
    """One running bot: its process, its port and how a call reaches it."""

    name: str
    process: subprocess.Popen[str]
    port: int
    log: list[str] = field(default_factory=list)

    async def plan_call(self, index: int) -> CallPlan:
        return CallPlan(ws_url=f"ws://127.0.0.1:{self.port}/ws", from_number=f"+1555{index:07d}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_stock(urls: Mapping[str, str], *, timeout: float = 90.0) -> Target:
    """Start the stock Pipecat bot and wait until it listens."""
    argv = [
        sys.executable, "-m", "bench.stock_bot", "--port", "0",
        "--openai-url", urls["openai"], "--openai-api-key", urls["openai_api_key"],
        "--elevenlabs-url", urls["elevenlabs_ws"], "--elevenlabs-api-key", urls["elevenlabs_api_key"],
        "--twilio-url", urls["twilio"], "--twilio-account-sid", urls["twilio_account_sid"],
        "--twilio-auth-token", urls["twilio_auth_token"],
    ]  # fmt: skip
    return _spawn("stock", argv, dict(os.environ), timeout)


def _spawn(name: str, argv: list[str], env: dict[str, str], timeout: float) -> Target:
    env.setdefault("PYTHONUNBUFFERED", "1")
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    log: list[str] = []
    port = _wait_for_port(process, log, timeout)
    if port is None:
        process.kill()
        tail = "".join(log[-30:])
        raise RuntimeError(f"{name} bot did not start within {timeout:.0f} s:\n{tail}")
    target = Target(name, process, port, log)
    assert process.stdout is not None
    threading.Thread(target=_drain, args=(process.stdout, log), daemon=True).start()
    return target


def _wait_for_port(process: subprocess.Popen[str], log: list[str], timeout: float) -> int | None:
    assert process.stdout is not None
    found: list[int] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            match = LISTENING.search(line)
            if match:
                found.append(int(match.group(1)))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


def _drain(stream: IO[str], log: list[str]) -> None:
    """Keep reading the bot's output so it never blocks on a full pipe (keep the last lines)."""
    for line in stream:
        log.append(line)
        if len(log) > 2000:
            del log[:1000]


@dataclass
class Sample:
    at: float
    cpu_seconds: float  # user + system, the bot and its children
    rss: int  # bytes, the bot and its children


class ResourceSampler:
    """Samples a process tree's CPU time and RSS every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[Sample] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Sample:
        cpu, rss = 0.0, 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        return Sample(time.monotonic(), cpu, rss)

    async def _run(self) -> None:
        while True:
            self.samples.append(await asyncio.to_thread(self.sample))
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[Sample]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.samples.append(self.sample())
        return list(self.samples)
