"""Finding 1: facts learned while the memory service is down are queued, not lost.

Before: with ``memory_backend=http`` and the memory service killed (-9), learning after a
``/v1/chat`` conversation first read the caller's context, that read failed, and nothing was
queued — 15 of 15 facts were lost and the outbox stayed empty. Now the learning job itself is
queued in the outbox and runs (read, extract, store) once the service is back.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from phone_agent.app import create_app
from tests.conftest import make_settings
from tests.fakes.openai import FakeOpenAI, Reply, ToolCall
from tests.security.memory_service import MemoryServiceProcess, eventually

TOKEN = "memory-token-sec13-0123456789"
KEY = "sk-agent-learn-key-0123456789"
CALLERS = [f"+1555010{i:04d}" for i in range(5)]
LEARNED = {"name": "Robin", "facts": [{"key": "topic", "content": "Needs a new crown fitted."}]}


def queued(outbox: Path) -> list[tuple[str, str]]:
    if not outbox.exists():
        return []
    with sqlite3.connect(outbox) as conn:
        return [(m, p) for m, p in conn.execute("SELECT method, path FROM outbox ORDER BY id")]


async def test_learning_after_chat_waits_in_the_outbox_while_the_service_is_dead(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    service = MemoryServiceProcess(tmp_path / "service", token=TOKEN)
    (tmp_path / "service").mkdir()
    service.start()
    service.kill()  # kill -9: the memory service is gone before the conversations start
    settings = make_settings(
        tmp_path,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/orchestrator.sqlite",
        PHONE_AGENT_DATA_DIR=str(tmp_path / "orchestrator-data"),
        PHONE_AGENT_MEMORY_BACKEND="http",
        PHONE_AGENT_MEMORY_URL=service.url,
        PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN,
        PHONE_AGENT_MEMORY_TIMEOUT_SECONDS="0.5",
        OPENAI_API_KEY=fake_openai.api_key,
        PHONE_AGENT_LLM_BASE_URL=fake_openai.url + "/v1",
        PHONE_AGENT_OPENAI_BASE_URL=fake_openai.url + "/v1",
        PHONE_AGENT_EMBEDDINGS_ENABLED="false",
        PHONE_AGENT_API_KEY=KEY,
    )
    outbox = tmp_path / "orchestrator-data" / "memory-outbox.sqlite3"
    app = create_app(settings, "orchestrator", migrate=True)
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://a", headers=headers
            ) as http,
        ):
            for caller in CALLERS:
                fake_openai.script(Reply(tool_calls=[ToolCall("end_call", {"reason": "done"})]), "Goodbye!")
                answer = await http.post(
                    "/v1/chat", json={"caller": caller, "message": "I'm Robin, I need a new crown."}
                )
                assert answer.status_code == 200 and answer.json()["ended"] is True, answer.text
            # every conversation's learning is queued as a job (the read of the caller failed)
            assert await eventually(lambda: len(queued(outbox)) == len(CALLERS), 20), queued(outbox)
            assert {method for method, _ in queued(outbox)} == {"LEARN"}

            fake_openai.script(*[json.dumps(LEARNED)] * len(CALLERS))  # the extractions, once it is back
            service.start()  # same port, same database; nothing else is written meanwhile

            def learned_everywhere() -> bool:
                found = [service.get(f"/memory/callers/{c}").json() for c in CALLERS]
                return all(
                    [m["content"] for m in f["memories"]] == [LEARNED["facts"][0]["content"]] for f in found
                )

            assert await eventually(learned_everywhere, 40)
            assert await eventually(lambda: queued(outbox) == [], 10), queued(outbox)
            assert service.get(f"/memory/callers/{CALLERS[0]}").json()["name"] == "Robin"
    finally:
        service.stop()
