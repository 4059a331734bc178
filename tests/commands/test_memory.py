"""`phone-agent knowledge ...` and `phone-agent memory ...` on the embedded database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phone_agent.cli import app
from phone_agent.memory.base import MemoryItem
from phone_agent.memory.factory import local_store
from tests.conftest import make_settings
from tests.memory.test_documents import make_pdf

PHONE = "+15551230001"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("PHONE_AGENT_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.sqlite")
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_knowledge_add_list_delete(cli_env: Path) -> None:
    (cli_env / "hours.md").write_text("# Opening hours\n\nMonday to Friday 9 to 5.")
    (cli_env / "faq.html").write_text("<title>FAQ</title><p>We cover home and car insurance.</p>")
    (cli_env / "claims.pdf").write_bytes(make_pdf(["File claims within 30 days."]))
    (cli_env / "virus.exe").write_bytes(b"MZ")
    files = [str(cli_env / name) for name in ("hours.md", "faq.html", "claims.pdf", "virus.exe")]
    code, output = invoke("knowledge", "add", *files)
    assert code == 1  # one file was refused, the others were added
    assert "added #1 'Opening hours': 1 chunks" in output and "added #3 'claims': 1 chunks" in output
    assert "skipped virus.exe" in output and "4/4" in output
    code, output = invoke("knowledge", "list", "--json")
    listed = json.loads(output)
    assert code == 0 and sorted(d["title"] for d in listed) == ["FAQ", "Opening hours", "claims"]
    assert {d["content_type"] for d in listed} == {"text/markdown", "text/html", "application/pdf"}
    assert invoke("knowledge", "delete", "2") == (0, "deleted document #2\n")
    assert invoke("knowledge", "delete", "2")[0] == 1
    code, output = invoke("knowledge", "reindex")
    assert code == 0 and "2 chunks written" in output


def test_memory_show_and_forget(cli_env: Path) -> None:
    assert invoke("memory", "show", PHONE) == (0, f"{PHONE}: unknown caller\n")

    async def seed() -> None:
        store = local_store(make_settings(cli_env, DATABASE_URL=f"sqlite+aiosqlite:///{cli_env}/cli.sqlite"))
        await store.store_memories(
            PHONE,
            [MemoryItem(content="Asked about home insurance.", key="topic")],
            name="Maria Lopez",
            profile={"topic": "home insurance"},
        )
        await store.aclose()

    asyncio.run(seed())
    code, output = invoke("memory", "show", PHONE)
    assert code == 0 and "Maria Lopez" in output and "topic: home insurance" in output
    assert "Asked about home insurance." in output
    shown = json.loads(invoke("memory", "show", PHONE, "--json")[1])
    assert (shown["name"], shown["memories"][0]["key"]) == ("Maria Lopez", "topic")
    assert invoke("memory", "forget", PHONE, "--yes") == (0, f"{PHONE}: deleted\n")
    assert invoke("memory", "show", PHONE) == (0, f"{PHONE}: unknown caller\n")
    assert invoke("memory", "purge", "--days", "30") == (0, "retention: 0 rows deleted\n")
