"""Split mode: the memory role runs as its own process on its own port; the orchestrator uses it
over HTTP (memory_backend=http) for the whole caller-memory cycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from phone_agent.errors import StoreError
from phone_agent.memory import extract_and_store_after_call, fetch_caller_context
from phone_agent.memory.client import HTTPMemoryStore
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call, CallTurn
from tests.api.test_memory import free_port, stored_contents
from tests.fakes.openai import FakeOpenAI
from tests.memory.conftest import memory_settings
from tests.memory.test_calls import FACTS, MARIA, record_call

TOKEN = "split-mode-token"


@pytest.fixture
def memory_process(tmp_path: Path, openai_fake: FakeOpenAI) -> Iterator[str]:
    """`phone-agent serve --role memory` in a child process; yields its URL."""
    port = free_port()
    (tmp_path / "service-config.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONE_AGENT_", "OPENAI_", "DATABASE_"))}
    env.update(
        PHONE_AGENT_CONFIG=str(tmp_path / "service-config.json"),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/memory-service.sqlite",
        PHONE_AGENT_DATA_DIR=str(tmp_path / "service-data"),
        PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN,
        OPENAI_API_KEY=openai_fake.api_key,
        PHONE_AGENT_OPENAI_BASE_URL=openai_fake.url + "/v1",
    )
    command = [sys.executable, "-m", "phone_agent", "serve", "--role", "memory", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                if httpx.get(url + "/health", timeout=1).json().get("role") == "memory":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "memory role did not come up"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)


async def test_orchestrator_uses_the_memory_role_over_http(
    memory_process: str, tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    settings = memory_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/orchestrator.sqlite",
        openai_fake,
        PHONE_AGENT_MEMORY_BACKEND="http",
        PHONE_AGENT_MEMORY_URL=memory_process,
        PHONE_AGENT_MEMORY_SERVICE_TOKEN=TOKEN,
    )
    runtime = Runtime.create(settings, "orchestrator")
    await upgrade(runtime.engine)
    try:
        services = runtime.current
        store = services.memory
        assert isinstance(store, HTTPMemoryStore)
        await record_call(
            runtime, "CA-split-1", MARIA, [("caller", "My name is Maria Lopez, home insurance.")]
        )
        openai_fake.script(json.dumps(FACTS))
        await extract_and_store_after_call(
            settings=settings, sessions=services.sessions, store=store, call_sid="CA-split-1"
        )

        # the facts live in the memory service's database, not the orchestrator's
        assert stored_contents(tmp_path / "memory-service.sqlite") == ["Her house is in Austin, Texas."]
        context = await fetch_caller_context(store, MARIA)
        assert (context.name, context.profile["topic"]) == ("Maria Lopez", "home insurance")
        assert [m.content for m in await store.retrieve(MARIA, "where is the house")] == [
            "Her house is in Austin, Texas."
        ]
        doc = await store.add_document(title="Claims", text="File a claim within 30 days by phone.")
        assert [h.document_id for h in await store.search_knowledge("how to file a claim")] == [doc.id]
        embedded = [r.json["input"] for r in openai_fake.requests_to("/v1/embeddings")]
        assert ["File a claim within 30 days by phone."] in embedded  # the service embeds

        assert await services.forget_caller(MARIA) is True
        assert stored_contents(tmp_path / "memory-service.sqlite") == []
        assert (await fetch_caller_context(store, MARIA)).known is False
        async with transaction(runtime.sessions) as session:  # transcripts stay local: deleted here
            assert await session.scalar(select(func.count()).select_from(Call)) == 0
            assert await session.scalar(select(func.count()).select_from(CallTurn)) == 0

        wrong = HTTPMemoryStore(base_url=memory_process, token="wrong", outbox_path=tmp_path / "o2.sqlite3")
        with pytest.raises(StoreError, match="401"):
            await wrong.caller_context(MARIA)
        await wrong.aclose()
    finally:
        await runtime.close()
