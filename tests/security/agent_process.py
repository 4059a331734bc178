"""A real ``phone-agent serve`` process for the security tests that need one (kill -9, uvicorn limits)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

CLEARED = ("PHONE_AGENT_", "OPENAI_", "ELEVENLABS_", "TWILIO_", "DATABASE_URL", "REDIS_URL", "PUBLIC_URL")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AgentProcess:
    """A served agent: its process, port and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def http_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """ws://127.0.0.1:PORT"""
        return f"ws://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """True while the process runs and answers /health."""
        if self.proc.poll() is not None:
            return False
        try:
            return httpx.get(self.http_url + "/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


@contextmanager
def agent_process(cwd: Path, env: dict[str, str], *, name: str = "agent") -> Iterator[AgentProcess]:
    """``phone-agent serve`` on a free port with exactly ``env`` (plus PATH/HOME); stopped on exit."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    log = cwd / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "phone_agent", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    agent = AgentProcess(proc, port, log)
    try:
        deadline = time.monotonic() + 90
        while not agent.alive():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"phone-agent serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield agent
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
