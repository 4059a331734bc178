"""`python -m bench.upload`: a live call's voice-to-voice while a large PDF is uploaded, vs without.

Starts the provider fakes and `phone-agent serve` (all roles, one process, as in the finding), logs
in to the admin page, warms the bot up with one call, then places the same calls twice: once on an
idle server, once while a large PDF (default 3,000 pages of text, ~1.8 MB) is uploaded through the
admin page. Prints voice-to-voice per turn (median and worst), `/health` round trips sampled every
100 ms, how long the upload took, and the load average; writes `bench/results/upload.md`.

    .venv/bin/python -m bench.upload                       # this tree
    .venv/bin/python -m bench.upload --tree /work/main    # another checkout's code (a before figure)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.pdfs import text_pdf

from bench.callers import UTTERANCES, CallResult, run_calls, utterance_frames
from bench.metrics import percentile
from bench.providers import DEFAULT_REPLY, Latencies
from bench.run import ProviderProcess
from bench.targets import OurTarget, start_ours

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "bench upload password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Phase:
    label: str
    v2v: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    upload_seconds: float | None = None
    upload_status: int | None = None

    def row(self) -> str:
        p50, worst = percentile(self.v2v, 50), max(self.v2v, default=None)
        h50, hmax = percentile(self.health, 50), max(self.health, default=None)
        upload = "-" if self.upload_seconds is None else f"{self.upload_seconds:.1f} s ({self.upload_status})"
        cells = [self.label, str(len(self.v2v)), _ms(p50), _ms(worst), _ms(h50), _ms(hmax), upload]
        return "| " + " | ".join(cells) + " |"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.0f} ms"


async def admin_client(target: OurTarget) -> tuple[httpx.AsyncClient, str]:
    """A logged-in admin client and its CSRF token."""
    client = httpx.AsyncClient(base_url=target.base_url, timeout=600)
    page = await client.get("/admin/login")
    token = CSRF.search(page.text)
    assert token, page.text[:300]
    login = {"password": PASSWORD, "csrf_token": token.group(1), "next": "/admin"}
    await client.post("/admin/login", data=login)
    admin = await client.get("/admin")
    csrf = CSRF.search(admin.text)
    assert csrf, "admin login failed"
    return client, csrf.group(1)


async def sample_health(target: OurTarget, into: list[float], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=target.base_url, timeout=120) as client:
        while not stop.is_set():
            started = time.monotonic()
            await client.get("/health")
            into.append(time.monotonic() - started)
            await asyncio.sleep(0.1)


async def run_phase(target: OurTarget, label: str, calls: int, upload: bytes | None) -> Phase:
    phase = Phase(label)
    frames = utterance_frames(UTTERANCES)
    stop = asyncio.Event()
    health = asyncio.create_task(sample_health(target, phase.health, stop))
    uploading: asyncio.Task[None] | None = None
    if upload is not None:
        admin, csrf = await admin_client(target)

        async def send() -> None:
            started = time.monotonic()
            answer = await admin.post(
                "/admin/knowledge/documents",
                files={"file": ("handbook.pdf", upload, "application/pdf")},
                headers={"x-csrf-token": csrf, "accept": "application/json"},
            )
            phase.upload_seconds, phase.upload_status = time.monotonic() - started, answer.status_code

        uploading = asyncio.create_task(send())
        await asyncio.sleep(1.0)  # the upload is being read when the calls start
    results: list[CallResult] = await run_calls(calls, target.plan_call, frames, stagger=0.5, linger=False)
    phase.v2v = [t.voice_to_voice for r in results for t in r.turns if t.voice_to_voice is not None]
    if uploading is not None:
        await uploading
        await admin.aclose()
    stop.set()
    await health
    return phase


async def main(pages: int, calls: int, tree: Path | None) -> str:
    load_before = os.getloadavg()
    providers = await asyncio.to_thread(ProviderProcess, Latencies(), DEFAULT_REPLY)
    extra = {"ADMIN_PASSWORD": PASSWORD}
    if tree is not None:
        extra["PYTHONPATH"] = str(tree / "src")
    target = await asyncio.to_thread(start_ours, providers.urls, extra_env=extra)
    try:
        await run_calls(1, target.plan_call, [], stagger=0.1, linger=True)  # warm-up, not measured
        idle = await run_phase(target, "no upload", calls, None)
        busy = await run_phase(target, f"during a {pages}-page PDF upload", calls, text_pdf(pages))
    finally:
        await asyncio.to_thread(target.stop)
        await asyncio.to_thread(providers.stop)
    load_after = os.getloadavg()
    code = str(tree) if tree is not None else "this tree"
    lines = [
        f"# Voice-to-voice during a large upload ({code})",
        "",
        f"{calls} call(s) x {len(UTTERANCES)} turns per phase; load average before "
        f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)} "
        f"({os.cpu_count()} cores).",
        "",
        "| phase | turns | v2v p50 | v2v worst | /health p50 | /health worst | upload |",
        "|---|---|---|---|---|---|---|",
        idle.row(),
        busy.row(),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000, help="pages of the uploaded PDF")
    parser.add_argument("--calls", type=int, default=2, help="concurrent calls per phase")
    parser.add_argument("--tree", type=Path, help="run another checkout's src (e.g. a before figure)")
    parser.add_argument("--out", type=Path, default=RESULTS / "upload.md")
    args = parser.parse_args()
    report = asyncio.run(main(args.pages, args.calls, args.tree))
    print(report)
    args.out.write_text(report)
