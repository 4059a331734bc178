"""The admin page in real headless Chromium: log in, change voice and greeting, play a sample,
open a call's transcript and waterfall, log out. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from phone_agent.app import create_app
from phone_agent.brain.persona import greeting_for
from phone_agent.memory import MemoryItem
from phone_agent.runtime import Runtime
from phone_agent.storage.db import transaction
from phone_agent.storage.migrate import upgrade
from phone_agent.storage.tables import Call
from tests.admin.browser import chromium_page, screenshot
from tests.admin.conftest import PASSWORD
from tests.admin.helpers import BOOKING_SENTENCE, insert_calls
from tests.admin.live_server import LiveServer
from tests.conftest import make_settings
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import FakeOpenAI

expect = pytest.importorskip("playwright.sync_api").expect


async def _seed(settings: object) -> None:
    runtime = Runtime.create(settings, "all")  # type: ignore[arg-type]
    try:
        await upgrade(runtime.engine)
        await insert_calls(runtime)
        await runtime.current.memory.store_memories(
            "+15551230001", [MemoryItem(content="Prefers morning appointments")], name="Maria Lopez"
        )
    finally:
        await runtime.close()


async def _add_live_call(settings: object) -> None:
    runtime = Runtime.create(settings, "all")  # type: ignore[arg-type]
    try:
        async with transaction(runtime.sessions) as session:
            session.add(Call(call_sid="CA-new", from_number="+15557770000", status="in-progress"))
    finally:
        await runtime.close()


def test_owner_session_in_chromium(tmp_path: Path) -> None:
    with FakeElevenLabs() as eleven, FakeOpenAI() as llm:
        settings = make_settings(
            tmp_path,
            OPENAI_API_KEY=llm.api_key,
            PHONE_AGENT_LLM_BASE_URL=llm.url + "/v1",
            PHONE_AGENT_EMBEDDINGS_ENABLED="false",
            ADMIN_PASSWORD=PASSWORD,
            ELEVENLABS_API_KEY=eleven.api_key,
            PHONE_AGENT_ELEVENLABS_BASE_URL=eleven.url,
        )
        asyncio.run(_seed(settings))
        app = create_app(settings)
        runtime = app.state.runtime
        with LiveServer(app) as server, chromium_page() as page:
            console_errors: list[str] = []  # e.g. a script or sample refused by the page's CSP
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            # no session: the page sends the browser to the login form
            page.goto(server.url + "/admin")
            assert page.url.startswith(server.url + "/admin/login")
            page.fill("input[name=password]", "not the password")
            page.click("button[type=submit]")
            assert page.locator("p.error").inner_text() == "Wrong password."
            screenshot(page, "0-login")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/admin")

            # 1. voice: the list comes from ElevenLabs; a bad value is refused on the form
            voice = page.locator("#voice")
            page.locator("#voice-list option").nth(1).wait_for(state="attached")
            assert page.locator("#voice-list option").count() == 2
            assert "2 voices available" in page.locator("#voice-status").inner_text()
            page.fill("#f-tts_stability", "1.5")
            voice.locator("button.primary").click()
            bad = voice.locator('[data-field="tts_stability"] .field-error')
            bad.wait_for(state="visible")
            assert "less than or equal to 1" in bad.inner_text()
            assert runtime.current.settings.tts_stability == 0.5
            page.fill("#f-tts_stability", "0.8")
            voice.locator("button.primary").click()
            voice.locator(".form-status.ok").wait_for()
            assert "Saved tts_stability" in voice.locator(".form-status").inner_text()
            assert voice.locator('[data-field="tts_stability"] .source').inner_text() == "admin"
            assert runtime.current.settings.tts_stability == 0.8
            page.fill("#f-elevenlabs_voice_id", "EXAVITQu4vr4xnSDxMaL")
            page.click("#play-sample")
            expect(page.locator("#sample-audio")).to_have_attribute("src", re.compile("^blob:"))
            assert eleven.http_requests[-1]["voice_id"] == "EXAVITQu4vr4xnSDxMaL"
            assert eleven.http_requests[-1]["json"]["voice_settings"]["stability"] == 0.8
            assert runtime.current.settings.elevenlabs_voice_id == "21m00Tcm4TlvDq8ikWAM"  # played, not saved
            screenshot(voice, "1-voice")
            eleven.fail_next(status=503)
            page.click("#play-sample")
            page.locator("#voice-status.error").wait_for()
            message = page.locator("#voice-status").inner_text()
            assert message.startswith("No sample: elevenlabs: not available right now (HTTP 503")
            assert "Calls use the fallback voice" in message
            assert page.locator("#sample-audio").is_hidden()
            screenshot(voice.locator(".sample"), "1-voice-elevenlabs-down")

            # 2. personality: the greeting the next call will speak
            personality = page.locator("#personality")
            page.fill("#f-greeting", "Good morning, {business_name}. {agent_name} speaking.")
            page.fill("#f-business_name", "Lopez Dental")
            personality.locator("form.settings button.primary").click()
            personality.locator(".form-status.ok").wait_for()
            assert greeting_for(runtime.current.settings) == "Good morning, Lopez Dental. Ava speaking."
            llm.script("Yes, on Saturdays from ten to noon.")
            page.fill("#try-input", "Are you open on Saturday?")
            page.click("#try-form button.primary")
            reply = page.locator("#try-log .turn.agent .text")
            reply.wait_for()
            assert reply.inner_text() == "Yes, on Saturdays from ten to noon."
            system = " ".join(
                m["content"] for m in llm.chat_requests[-1]["messages"] if m["role"] == "system"
            )
            assert "receptionist of Lopez Dental" in system  # the brain got the persona just saved
            screenshot(personality, "2-personality")

            # 5. calls: live call listed; the finished call's transcript and waterfall
            page.reload()
            calls = page.locator("#calls")
            assert "+15559990000" in calls.locator("#live-calls").inner_text()
            with ThreadPoolExecutor(1) as pool:  # a call comes in while the page is open (own loop)
                pool.submit(asyncio.run, _add_live_call(settings)).result(timeout=30)
            expect(calls.locator("#live-count")).to_have_text("2", timeout=20_000)
            assert "+15557770000" in calls.locator("#live-calls").inner_text()
            screenshot(calls, "5-calls")
            calls.locator('a[href="/admin/calls/CA-done"]').click()
            page.wait_for_url(server.url + "/admin/calls/CA-done")
            assert page.locator("svg.waterfall rect.bar").count() == 8
            box = page.locator("svg.waterfall rect.bar.llm").first.bounding_box()
            assert box is not None and box["width"] > 20  # drawn, visible
            assert "Book me a call-back please." in page.locator("#transcript").inner_text()
            assert BOOKING_SENTENCE in page.locator("#transcript").inner_text()
            screenshot(page.locator("#waterfall"), "5-call-waterfall")
            screenshot(page, "5-call-page")

            # 4. knowledge & memory: upload a document and find it; delete all data of a caller
            page.goto(server.url + "/admin#knowledge")
            knowledge = page.locator("#knowledge")
            doc = tmp_path / "opening-hours.md"
            doc.write_text(
                "# Opening hours\n\nOpen on Saturdays from 10:00 to 12:00; parking behind the building.\n"
            )
            knowledge.locator("#upload-form input[type=file]").set_input_files(str(doc))
            knowledge.locator("#upload-form button").click()
            page.wait_for_url("**/admin?saved=knowledge#knowledge")
            assert "Opening hours" in knowledge.locator("#documents").inner_text()
            knowledge.locator("#knowledge-search input[name=kq]").fill("is there parking")
            knowledge.locator("#knowledge-search button").click()
            assert "parking behind the building" in knowledge.locator("#knowledge-hits").inner_text()
            knowledge.locator("#caller-search input[name=cq]").fill("maria")
            knowledge.locator("#caller-search button").click()
            assert "Maria Lopez" in knowledge.locator("#callers").inner_text()
            screenshot(knowledge, "4-knowledge-memory")
            knowledge.locator("#callers a").first.click()
            page.wait_for_url("**/admin/callers/*")
            memory = page.locator("#memories input[name=content]").first.input_value()
            assert memory == "Prefers morning appointments"
            screenshot(page, "4-caller")
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("#delete-caller button")
            page.wait_for_url("**/admin?saved=caller-deleted#knowledge")
            assert "All data of the caller was deleted." in knowledge.inner_text()
            assert "Maria Lopez" not in knowledge.inner_text()
            assert page.goto(server.url + "/admin/callers/+15551230001").status == 404
            assert page.goto(server.url + "/admin/calls/CA-done").status == 404  # transcript gone too

            # 6. system: health, every config value with its source, the audit trail of this session
            page.goto(server.url + "/admin#system")
            system = page.locator("#system")
            assert "OK" in system.locator("#health").inner_text()
            assert "calls in this process" in system.locator("#load").inner_text()  # and its event loop
            config = system.locator("#config-table").inner_text()
            assert "tts_stability\t0.8\tadmin" in config and "elevenlabs_api_key\t…****" in config
            audit = system.locator("#audit-log").inner_text()
            assert "config.set\tgreeting" in audit and "0.5 → 0.8" in audit
            screenshot(system, "6-system")

            assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
            page.click(".logout button")
            page.wait_for_url(server.url + "/admin/login")
            page.goto(server.url + "/admin")
            assert page.url.startswith(server.url + "/admin/login")
