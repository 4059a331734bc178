"""`phone-agent serve --workers N`: N processes share the port, the database migrated once, both write
to one SQLite file without "database is locked", and the media stream never negotiates
permessage-deflate (compressing audio costs CPU and saves nothing)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import connect

from tests.api.test_phone import AUTH_TOKEN, FORM, VOICE_KEYS, sign
from tests.test_cli import free_port


async def offered_deflate_accepted(url: str) -> str | None:
    """The extensions the server accepted when a client offered permessage-deflate."""
    async with connect(url, compression="deflate", open_timeout=20) as ws:
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions")


CALLS = 60


async def ring_and_hang_up(base: str, calls: int) -> list[tuple[int, int]]:
    """``calls`` concurrent signed /phone/incoming + /phone/status pairs (each writes the call row)."""
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int) -> tuple[int, int]:
            form = {**FORM, "CallSid": f"CA{i:032x}", "From": f"+1555300{i:04d}"}
            incoming = await client.post(
                base + "/phone/incoming",
                data=form,
                headers={"X-Twilio-Signature": sign(base + "/phone/incoming", form)},
            )
            done = {**form, "CallStatus": "completed"}
            status = await client.post(
                base + "/phone/status",
                data=done,
                headers={"X-Twilio-Signature": sign(base + "/phone/status", done)},
            )
            return incoming.status_code, status.status_code

        return list(await asyncio.gather(*(one(i) for i in range(calls))))


def test_serve_with_two_workers_runs_two_processes_on_one_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONE_AGENT_", "DATABASE_URL"))}
    env["PHONE_AGENT_ADMIN_STATUS_TOKEN"] = "workers-status-token"
    env.update(TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_URL=f"http://127.0.0.1:{port}", **VOICE_KEYS)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phone_agent",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180  # two processes import the app: slow on a busy machine
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name()]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and len(workers) >= 2:
                break
            time.sleep(0.3)
        assert len(workers) >= 2, f"expected 2 worker processes, saw {len(workers)}"
        status = httpx.get(
            f"http://127.0.0.1:{port}/admin-status",
            headers={"Authorization": "Bearer workers-status-token"},
            timeout=10,
        ).json()
        assert status["database"]["migrations_current"]  # migrated before the workers started
        assert asyncio.run(offered_deflate_accepted(f"ws://127.0.0.1:{port}/media-stream")) is None
        # both processes write to the one SQLite file at once: no "database is locked"
        answers = asyncio.run(ring_and_hang_up(f"http://127.0.0.1:{port}", CALLS))
        assert answers == [(200, 204)] * CALLS
        counts = httpx.get(
            f"http://127.0.0.1:{port}/admin-status",
            headers={"Authorization": "Bearer workers-status-token"},
            timeout=10,
        ).json()["counts"]
        assert counts["calls"] == CALLS and counts["active_calls"] == 0
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # reads and closes its output pipe too
