"""Finding 11 (part): encrypted PDFs and PDF bombs get a 4xx with a clear message, in bounded memory.

Before: an AES-encrypted PDF raised pypdf's DependencyError (500), and a PDF bomb was inflated in the
server's own process (+74-114 MB per upload). Now both are read in the worker process and answered
with 422 and a message saying what to do; the server process does not grow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

from phone_agent.app import create_app
from tests.admin.conftest import PASSWORD, log_in
from tests.conftest import make_settings
from tests.pdfs import bomb_pdf, encrypted_pdf, text_pdf

TOKEN = "pdf-token-sec13-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bomb_pdf(8, pages=1)  # 50 KB on disk; 8 MB of text operators (pypdf: +300 MB, then its limit)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN, ADMIN_PASSWORD=PASSWORD)
    with TestClient(create_app(settings), raise_server_exceptions=False, client=("192.0.2.10", 5000)) as c:
        yield c


class PeakRSS:
    """The largest resident size of this process while the block runs, above where it started."""

    def __enter__(self) -> PeakRSS:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def test_encrypted_pdf_is_422_with_a_message(client: TestClient) -> None:
    files = {"file": ("locked.pdf", encrypted_pdf(), "application/pdf")}
    answer = client.post("/knowledge/files", files=files, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "encrypted; save it without a password" in answer.json()["detail"]
    csrf = log_in(client)
    admin = client.post(
        "/admin/knowledge/documents",
        files=files,
        headers={"x-csrf-token": csrf, "accept": "application/json"},
    )
    assert admin.status_code == 422, admin.text
    assert "encrypted" in admin.json()["error"]["message"]


def test_pdf_bomb_is_refused_without_the_server_growing(client: TestClient, bomb: bytes) -> None:
    warm_up = {"file": ("one.pdf", text_pdf(1), "application/pdf")}  # the route's own first allocations
    assert client.post("/knowledge/files", files=warm_up, headers=AUTH).status_code == 201
    with PeakRSS() as rss:
        answer = client.post(
            "/knowledge/files", files={"file": ("bomb.pdf", bomb, "application/pdf")}, headers=AUTH
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("bomb.pdf: the PDF expands beyond what is read safely")
    assert rss.growth_mb < 40, f"the server grew {rss.growth_mb:.0f} MB reading a PDF bomb"
    assert [d["title"] for d in client.get("/knowledge/documents", headers=AUTH).json()["documents"]] == [
        "one"
    ]
