"""The bots under test, each run as a subprocess on an ephemeral port, and a resource sampler.

`stock`: `bench/stock_bot.py` (Pipecat's Twilio example, same services, same fakes).
`ours`: `phone-agent serve` (all roles in one process, its own SQLite database in a temporary
directory) with every provider URL on the fakes; each call starts as Twilio starts it, with a
signed `POST /phone/incoming`, and connects where the TwiML answer says, with its parameters.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil
from twilio.request_validator import RequestValidator

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


@dataclass
class OurTarget(Target):
    """`phone-agent serve`: calls begin with a signed webhook, like Twilio's."""

    auth_token: str = ""
    account_sid: str = ""
    workdir: tempfile.TemporaryDirectory[str] | None = None
    placed: int = 0  # calls placed so far: each gets its own CallSid, as Twilio gives

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def incoming(self, index: int) -> tuple[str, dict[str, str]]:
        """POST /phone/incoming as Twilio would, for a new CallSid; the TwiML answer and the form."""
        self.placed += 1  # a CallSid is never reused: a repeated one is refused (a replayed webhook)
        call_sid = f"CA{self.placed:016x}{index:016x}"
        form = {
            "AccountSid": self.account_sid,
            "CallSid": call_sid,
            "From": f"+1555{index:07d}",
            "To": "+15005550001",
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        url = self.base_url + "/phone/incoming"
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
        response.raise_for_status()
        return response.text, form

    async def plan_call(self, index: int) -> CallPlan:
        """The call's webhook (``incoming``); the TwiML names the stream URL and its parameters."""
        twiml, form = await self.incoming(index)
        stream = ET.fromstring(twiml).find("./Connect/Stream")
        if stream is None:
            raise RuntimeError(f"/phone/incoming did not connect a stream: {twiml[:200]}")
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        return CallPlan(
            ws_url=stream.get("url", ""),
            custom_parameters=parameters,
            call_sid=form["CallSid"],
            from_number=form["From"],
        )

    def stop(self) -> None:
        super().stop()
        if self.workdir is not None:
            self.workdir.cleanup()


def free_port() -> int:
    """A port nothing listens on now (PUBLIC_URL must name the port before the server starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ours_env(urls: Mapping[str, str], port: int, data_dir: Path) -> dict[str, str]:
    """The environment that points `phone-agent serve` at the fakes (nothing else configured)."""
    config = data_dir / "config.json"
    config.write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHONE_AGENT_")}
    env.update(
        {
            "PHONE_AGENT_CONFIG": str(config),
            "PHONE_AGENT_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/phone-agent.db",
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PHONE_AGENT_SESSION_SECRET": "bench-session-secret",
            "OPENAI_API_KEY": urls["openai_api_key"],
            "PHONE_AGENT_OPENAI_BASE_URL": urls["openai"],
            "PHONE_AGENT_LLM_BASE_URL": urls["openai"],
            # only transcription sessions answer there (streaming STT); realtime voice mode is not benched
            "PHONE_AGENT_REALTIME_BASE_URL": urls["openai_realtime_stt"],
            "ELEVENLABS_API_KEY": urls["elevenlabs_api_key"],
            "PHONE_AGENT_ELEVENLABS_BASE_URL": urls["elevenlabs_http"],
            "DEEPGRAM_API_KEY": urls["deepgram_api_key"],
            "PHONE_AGENT_DEEPGRAM_BASE_URL": urls["deepgram"],
            "TWILIO_ACCOUNT_SID": urls["twilio_account_sid"],
            "TWILIO_AUTH_TOKEN": urls["twilio_auth_token"],
            "PHONE_AGENT_TWILIO_API_BASE_URL": urls["twilio"],
            "PHONE_AGENT_LOG_LEVEL": "WARNING",
        }
    )
    return env


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """`argv` run on the CPUs `cpus` (taskset's list, e.g. "0"), or as it is without."""
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def start_ours(
    urls: Mapping[str, str],
    *,
    workers: int = 1,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
    cpus: str | None = None,
    data_dir: Path | None = None,
) -> OurTarget:
    """Start `phone-agent serve` on a free port (pinned to `cpus`) and wait until /health answers.
    Its data directory is a new temporary one (a new install), or `data_dir`, kept (a restart)."""
    workdir = None
    if data_dir is None:
        workdir = tempfile.TemporaryDirectory(prefix="phone-agent-bench-")
        data_dir = Path(workdir.name)
    port = free_port()
    env = ours_env(urls, port, data_dir)
    env.update(extra_env or {})
    argv = [sys.executable, "-m", "phone_agent", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    process = subprocess.Popen(
        pinned(argv, cpus), cwd=data_dir, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1,
    )  # fmt: skip
    log: list[str] = []
    assert process.stdout is not None
    threading.Thread(target=_drain, args=(process.stdout, log), daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            if workdir is not None:
                workdir.cleanup()
            raise RuntimeError(f"phone-agent serve did not start:\n{''.join(log[-30:])}")
        time.sleep(0.2)
    return OurTarget(
        "ours", process, port, log, auth_token=urls["twilio_auth_token"],
        account_sid=urls["twilio_account_sid"], workdir=workdir,
    )  # fmt: skip


def start_stock(urls: Mapping[str, str], *, timeout: float = 90.0, cpus: str | None = None) -> Target:
    """Start the stock Pipecat bot (pinned to `cpus`) and wait until it listens."""
    argv = [
        sys.executable, "-m", "bench.stock_bot", "--port", "0",
        "--openai-url", urls["openai"], "--openai-api-key", urls["openai_api_key"],
        "--elevenlabs-url", urls["elevenlabs_ws"], "--elevenlabs-api-key", urls["elevenlabs_api_key"],
        "--twilio-url", urls["twilio"], "--twilio-account-sid", urls["twilio_account_sid"],
        "--twilio-auth-token", urls["twilio_auth_token"],
    ]  # fmt: skip
    return _spawn("stock", pinned(argv, cpus), dict(os.environ), timeout)


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


def harness_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (not their children)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def cores_busy_seconds() -> list[tuple[float, float]]:
    """(busy, total) CPU seconds of each core since boot, whoever used them."""
    return [(sum(t) - t.idle - getattr(t, "iowait", 0.0), sum(t)) for t in psutil.cpu_times(percpu=True)]


def cores_busy_percent(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> list[float]:
    """How busy each core was between two `cores_busy_seconds()` readings (0-100)."""
    return [
        100 * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        for (b0, t0), (b1, t1) in zip(before, after, strict=True)
    ]


class ResourceSampler:
    """Samples a process tree's CPU time and RSS every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[Sample] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Sample:
        cpu, rss = 0.0, 0
        try:
            children = self.process.children(recursive=True)
        except psutil.Error:  # the bot has exited: nothing of it left to sample
            children = []
        for proc in [self.process, *children]:
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
