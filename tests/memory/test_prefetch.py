"""The caller's context is fetched at /phone/incoming and is ready, without a query, at stream start."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Caller


def count_queries(runtime: Runtime) -> list[str]:
    """Every SQL statement run on the runtime's engine from now on."""
    statements: list[str] = []
    event.listen(runtime.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    return statements


async def add_caller(runtime: Runtime, phone: str, name: str) -> None:
    async with transaction(runtime.sessions) as session:
        session.add(Caller(phone=phone, name=name))


async def test_prefetched_context_is_used_without_a_query(runtime: Any) -> None:
    await add_caller(runtime, "+15550001111", "Maria")
    store = runtime.current.memory
    runtime.prefetch.start(store, call_sid="CA1", caller="+15550001111")
    await runtime.tasks.wait()  # the webhook has long answered by now
    statements = count_queries(runtime)
    context = await runtime.prefetch.take(store, call_sid="CA1", caller="+15550001111")
    assert context is not None and context.name == "Maria" and statements == []
    assert len(runtime.prefetch) == 0  # used once


async def test_without_prefetch_or_for_another_number_it_fetches(runtime: Any) -> None:
    await add_caller(runtime, "+15550002222", "Ann")
    store = runtime.current.memory
    statements = count_queries(runtime)
    assert (await runtime.prefetch.take(store, call_sid="CA2", caller="+15550002222")).name == "Ann"
    assert statements  # fetched from the database at stream start
    runtime.prefetch.start(store, call_sid="CA3", caller="+15550009999")
    context = await runtime.prefetch.take(store, call_sid="CA3", caller="+15550002222")  # signed number wins
    assert context is not None and context.name == "Ann" and context.phone == "+15550002222"


def test_incoming_webhook_starts_the_prefetch(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from phone_agent.app import create_app
    from tests.api.test_phone import AUTH_TOKEN, FORM, PUBLIC, VOICE_KEYS, sign
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_URL=PUBLIC, **VOICE_KEYS)
    with TestClient(create_app(settings)) as client:
        headers = {"X-Twilio-Signature": sign(PUBLIC + "/phone/incoming", FORM)}
        assert client.post("/phone/incoming", data=FORM, headers=headers).status_code == 200
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert client.portal is not None
        assert len(runtime.prefetch) == 1  # fetching while Twilio connects the stream

        async def stream_starts() -> Any:
            store = runtime.current.memory
            return await runtime.prefetch.take(store, call_sid=FORM["CallSid"], caller=FORM["From"])

        context = client.portal.call(stream_starts)
        assert len(runtime.prefetch) == 0  # taken by the stream
        assert context.phone == FORM["From"] and context.name is None
