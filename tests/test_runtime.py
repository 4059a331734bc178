"""The Runtime hands each call and request one Services, rebuilds them on an admin change, closes the old
ones when their last user ends, and leaves no task of ours behind at shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from phone_agent.admin.settings_form import save_section
from phone_agent.app import create_app
from phone_agent.memory.client import HTTPMemoryStore
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.overrides import save_overrides
from phone_agent.voice.pipeline import build_call
from phone_agent.voice.stream import StreamStart
from tests.conftest import make_settings


class IdleWebSocket:
    """Enough of a websocket for building a call's pipeline (nothing runs until ``run_call``)."""

    client_state = application_state = None

    async def close(self, *_: Any, **__: Any) -> None:
        return None


async def test_an_admin_save_during_call_setup_leaves_the_call_on_one_settings(
    tmp_path: Path, monkeypatch: Any
) -> None:
    runtime = Runtime.create(
        make_settings(tmp_path, OPENAI_API_KEY="sk-test", ELEVENLABS_API_KEY="xi-t"), "all"
    )
    await upgrade(runtime.engine)
    try:
        await race_an_admin_save_against_call_setup(runtime, monkeypatch)
    finally:
        await runtime.close()


async def race_an_admin_save_against_call_setup(runtime: Runtime, monkeypatch: Any) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    real_take = runtime.prefetch.take

    async def held_take(*args: Any, **kwargs: Any) -> Any:  # the call awaits its caller's memory...
        entered.set()
        await release.wait()
        return await real_take(*args, **kwargs)

    monkeypatch.setattr(runtime.prefetch, "take", held_take)
    start = StreamStart(stream_sid="MZ1", call_sid="CA-race", account_sid=None, caller="+15550001111")
    async with runtime.use() as services:
        building = asyncio.create_task(build_call(IdleWebSocket(), runtime, services, start))  # type: ignore[arg-type]
        await asyncio.wait_for(entered.wait(), 10)
        # ...while the owner saves a new name, greeting and model
        changed = await save_section(
            runtime,
            "personality",
            {"agent_name": "Nova", "greeting": "Nova here at {business_name}. What can I do for you?"},
            actor="test",
        )
        assert changed == ["agent_name", "greeting"] and runtime.current.settings.agent_name == "Nova"
        release.set()
        call = await asyncio.wait_for(building, 20)
        assert not services.closed.is_set()  # still held by this call
    assert call.tools.settings is services.settings and call.llm.app_settings is services.settings
    assert call.tools.settings.agent_name == "Ava" and "Ava" in call.greeting and "Nova" not in call.greeting
    assert call.llm.chain is services.llm
    assert services.closed.is_set()  # replaced, and closed once the call let go
    assert runtime.current.settings.agent_name == "Nova" and not runtime.current.closed.is_set()


async def test_a_memory_setting_changed_by_the_admin_is_used_by_the_next_call(runtime: Runtime) -> None:
    first = runtime.current
    assert not isinstance(first.memory, HTTPMemoryStore)
    async with transaction(runtime.sessions) as session:
        await save_overrides(
            session,
            first.settings,
            {"memory_backend": "http", "memory_url": "http://127.0.0.1:8199"},
            actor="test",
        )
    await runtime.apply_overrides()
    async with runtime.use() as services:  # the next call
        assert isinstance(services.memory, HTTPMemoryStore)
        assert services.memory.base_url.startswith("http://127.0.0.1:8199")
        assert services.local_memory is not services.memory  # transcripts stay in this database
    assert first.closed.is_set()  # nobody held the old store: closed at once


async def test_unchanged_settings_keep_their_services(runtime: Runtime) -> None:
    services = runtime.current
    await runtime.apply_overrides()
    assert runtime.current is services and not services.closed.is_set()


async def test_after_shutdown_no_task_of_ours_is_pending(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), "orchestrator")
    runtime: Runtime = app.state.runtime

    class HangingStore:
        async def caller_context(self, phone: str, *, limit: int = 8) -> Any:
            await asyncio.sleep(3600)

    async with app.router.lifespan_context(app):
        runtime.prefetch.start(HangingStore(), call_sid="CA-1", caller="+15550001111")  # type: ignore[arg-type]
        runtime.spawn_with(runtime.current, asyncio.sleep(3600), name="learn-CA-1")
        await asyncio.sleep(0)
        assert len(runtime.tasks.pending) >= 3  # prefetch, learning, retention
        services = runtime.current
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert others == [] and runtime.tasks.pending == []
    assert services.closed.is_set() and runtime.http.is_closed
    assert runtime.tasks.spawn(asyncio.sleep(0), name="late") is None  # nothing starts after shutdown


async def test_models_are_loaded_at_startup_only_in_roles_that_take_calls(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import phone_agent.voice.shared_models as shared_models

    loaded: list[str] = []
    monkeypatch.setattr(shared_models, "preload_models", lambda: loaded.append("models"))
    for role, expected in (
        ("orchestrator", []),
        ("memory", []),
        ("voice-bridge", ["models"]),
        ("all", ["models"]),
    ):
        loaded.clear()
        app = create_app(make_settings(tmp_path), role)  # type: ignore[arg-type]
        async with app.router.lifespan_context(app):
            assert loaded == expected, role
