"""The admin page and real calls: a saved change reaches the next call; "hang up" ends a live call."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select

from phone_agent.storage.tables import AuditEntry, Call, CallTurn
from tests.admin.conftest import PASSWORD, log_in_over_http, save_settings_over_http

NEW_GREETING = "Good evening, {business_name}, {agent_name} here. What can I do for you?"


async def test_saved_greeting_and_stability_are_used_by_the_next_call(
    agent_factory: Any, db_rows: Any
) -> None:
    with agent_factory(ADMIN_PASSWORD=PASSWORD) as agent:
        base = agent.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, timeout=20) as web:
            csrf = await log_in_over_http(web)
            changed = await save_settings_over_http(web, csrf, "personality", greeting=NEW_GREETING)
            assert changed == ["greeting"]
            changed = await save_settings_over_http(web, csrf, "voice", tts_stability="0.85")
            assert changed == ["tts_stability"]
        async with agent.caller(from_number="+15550004444") as caller:
            await caller.wait_for_agent_audio(timeout=20)
            await caller.wait_for_quiet(0.3, timeout=30)
    expected = "Good evening, Bella Cucina, Ava here. What can I do for you?"
    contexts = list(agent.elevenlabs.contexts.values())
    assert any(expected in "".join(c.texts) for c in contexts), [c.texts for c in contexts]
    assert {c.voice_settings["stability"] for c in contexts if c.voice_settings} == {0.85}
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    [greeting] = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id))
    assert greeting.text == expected


async def test_hang_up_a_live_call_from_the_admin_page(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(ADMIN_PASSWORD=PASSWORD) as agent:
        base = agent.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, timeout=20) as web:
            csrf = await log_in_over_http(web)
            async with agent.caller(from_number="+15550006666") as caller:
                await caller.wait_for_agent_audio(timeout=20)
                live = (await web.get("/admin/api/calls")).json()["live"]
                assert [c["call_sid"] for c in live] == [caller.call_sid]
                assert f"/admin/calls/{caller.call_sid}/hangup" in (await web.get("/admin")).text
                sent = await web.post(
                    f"/admin/calls/{caller.call_sid}/hangup",
                    data={"csrf_token": csrf},
                    headers={"Accept": "application/json"},
                )
                assert sent.json() == {"ok": True}
                await caller.wait_for_close(timeout=30)
            for _ in range(100):  # the call row is closed right after the stream ends
                if not (await web.get("/admin/api/calls")).json()["live"]:
                    break
                await asyncio.sleep(0.1)
            assert (await web.get("/admin/api/calls")).json()["live"] == []
            again = await web.post(f"/admin/calls/{caller.call_sid}/hangup", data={"csrf_token": csrf})
            assert again.status_code == 404
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "admin" and call.ended_at is not None
    [audit] = await db_rows(select(AuditEntry).where(AuditEntry.action == "call.hangup"))
    assert audit.target == caller.call_sid and audit.actor == "admin@127.0.0.1"
