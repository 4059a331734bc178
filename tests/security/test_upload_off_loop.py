"""Finding 5: document parsing, chunking and reindexing run off the event loop, as jobs.

Before: an 11 MB, 3,000-page PDF was parsed on the event loop (72-88 s) — a live call's turn took
10.8 s and ``/health`` stalled 12 s meanwhile; two concurrent reindexes gave 500 "database is
locked". Now an upload is a background job whose parsing runs in a worker process with page, time
and memory limits (its status and progress at ``/knowledge/jobs/{id}``, also on the admin API), the
server answers meanwhile, and a second reindex while one runs is refused with 409. The figure of a
live call's voice-to-voice during a large upload is ``python -m bench.upload``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from phone_agent.app import create_app
from phone_agent.memory.documents import DocumentError
from phone_agent.memory.ingest import ParseLimits, parse_document
from tests.conftest import make_settings
from tests.pdfs import text_pdf

TOKEN = "jobs-token-sec13-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN)
    app = create_app(settings, "all", migrate=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a", headers=AUTH) as http,
    ):
        yield http


async def job_until_done(api: httpx.AsyncClient, job_id: str) -> tuple[dict, set[str], int]:
    """Poll a job; returns its last state, the stages seen, and how often /health answered meanwhile."""
    stages, health = set(), 0
    for _ in range(1200):
        job = (await api.get(f"/knowledge/jobs/{job_id}")).json()
        stages.add(job["stage"])
        if job["status"] in ("done", "failed"):
            return job, stages, health
        health += (await api.get("/health")).status_code == 200
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_a_large_upload_is_a_job_and_the_server_answers_meanwhile(api: httpx.AsyncClient) -> None:
    pdf = text_pdf(600)
    accepted = await api.post(
        "/knowledge/files", params={"wait": "false"}, files={"file": ("handbook.pdf", pdf, "application/pdf")}
    )
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()["job"]
    assert accepted.headers["location"] == f"/knowledge/jobs/{job['id']}"
    final, stages, health = await job_until_done(api, job["id"])
    assert final["status"] == "done", final
    assert "parsing" in stages and health > 0  # /health was served while the PDF was being read
    assert final["result"]["chunks"] == final["total"] > 100
    hits = (await api.post("/knowledge/search", json={"query": "opening hours weekdays"})).json()["hits"]
    assert hits and hits[0]["document_id"] == final["result"]["id"]


async def test_one_reindex_at_a_time(api: httpx.AsyncClient) -> None:
    uploaded = await api.post(
        "/knowledge/files", files={"file": ("manual.pdf", text_pdf(300), "application/pdf")}
    )
    assert uploaded.status_code == 201, uploaded.text
    first = await api.post("/knowledge/reindex", params={"wait": "false"})
    assert first.status_code == 202, first.text
    second = await api.post("/knowledge/reindex")
    assert second.status_code == 409, second.text
    assert "already running" in second.json()["error"]["message"]
    final, stages, _ = await job_until_done(api, first.json()["job"]["id"])
    assert final["status"] == "done" and final["result"]["chunks"] == uploaded.json()["chunks"]
    assert "documents" in stages
    again = await api.post("/knowledge/reindex")  # the first one has finished: a new one may run
    assert again.status_code == 200 and again.json() == {"chunks": uploaded.json()["chunks"]}
    assert (await api.get("/knowledge/jobs/not-a-job")).status_code == 404


async def test_the_worker_enforces_page_time_and_memory_limits() -> None:
    pdf = text_pdf(400)
    with pytest.raises(DocumentError, match="400 pages; at most 100"):
        await parse_document(pdf, "long.pdf", limits=ParseLimits(max_pages=100))
    # 2,000 pages take 1-2 s to read (0.5 s for 400 on a fast machine): 30x the limit, not 2x
    with pytest.raises(DocumentError, match="took longer than 0.05 s"):
        await parse_document(text_pdf(2000), "slow.pdf", limits=ParseLimits(seconds=0.05))
    with pytest.raises(DocumentError, match="more than 100 characters"):
        await parse_document(pdf, "wordy.pdf", limits=ParseLimits(max_text_chars=100))
    parsed = await parse_document(pdf, "fine.pdf")
    assert len(parsed.chunks) > 50 and "Opening hours" in parsed.text
