"""An admin change reaches the next phone call without a restart: greeting text and voice settings."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn
from tests.admin.conftest import CSRF_INPUT, PASSWORD
from tests.voice import conftest as voice

agent_factory = voice.agent_factory  # the voice tests' running agent wired to the fakes
db_rows = voice.db_rows

NEW_GREETING = "Good evening, {business_name}, {agent_name} here. What can I do for you?"


async def test_saved_greeting_and_stability_are_used_by_the_next_call(
    agent_factory: Any, db_rows: Any
) -> None:
    with agent_factory(ADMIN_PASSWORD=PASSWORD) as agent:
        base = agent.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, timeout=20) as web:
            login = await web.get("/admin/login")
            token = CSRF_INPUT.search(login.text).group(1)
            await web.post("/admin/login", data={"password": PASSWORD, "csrf_token": token})
            csrf = CSRF_INPUT.search((await web.get("/admin")).text).group(1)
            saved = await web.post(
                "/admin/settings/personality",
                data={"csrf_token": csrf, "greeting": NEW_GREETING},
                headers={"Accept": "application/json"},
            )
            assert saved.json()["changed"] == ["greeting"]
            saved = await web.post(
                "/admin/settings/voice",
                data={"csrf_token": csrf, "tts_stability": "0.85"},
                headers={"Accept": "application/json"},
            )
            assert saved.json()["changed"] == ["tts_stability"]
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
