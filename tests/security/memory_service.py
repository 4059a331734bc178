"""The memory role as a real child process on a fixed port (a test can kill -9 it and start it
again), and ``eventually`` for what background tasks do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.api.test_memory import free_port


class MemoryServiceProcess:
    """`phone-agent serve --role memory` on its own SQLite database; ``kill()`` is SIGKILL."""

    def __init__(self, root: Path, *, token: str, env: dict[str, str] | None = None) -> None:
        self.root, self.token = root, token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = root / "memory-service.sqlite"
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.root / "service-config.json").write_text("{}")
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PHONE_AGENT_", "OPENAI_", "DATABASE_"))
        }
        env.update(
            PHONE_AGENT_CONFIG=str(self.root / "service-config.json"),
            DATABASE_URL=f"sqlite+aiosqlite:///{self.database}",
            PHONE_AGENT_DATA_DIR=str(self.root / "service-data"),
            PHONE_AGENT_MEMORY_SERVICE_TOKEN=self.token,
            PHONE_AGENT_EMBEDDINGS_ENABLED="false",
            **self.extra_env,
        )
        command = [sys.executable, "-m", "phone_agent", "serve", "--role", "memory", "--host", "127.0.0.1"]
        # The log goes to a file, not a pipe: nobody reads a pipe while the service runs (a full one
        # would block it), and a file needs no closing when the process is killed.
        log = self.root / "service.log"
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], env=env, stdout=subprocess.DEVNULL, stderr=output
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                if httpx.get(self.url + "/health", timeout=1).json().get("role") == "memory":
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "memory role did not come up"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye (what the outbox must survive)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"authorization": f"Bearer {self.token}"}, timeout=10)


async def eventually(check: Callable[[], bool], within: float, step: float = 0.1) -> bool:
    """Poll ``check`` until it holds (True) or ``within`` seconds pass (its last answer)."""
    for _ in range(int(within / step)):
        if check():
            return True
        await asyncio.sleep(step)
    return bool(check())
