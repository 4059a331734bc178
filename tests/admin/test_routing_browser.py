"""The Call routing section in real headless Chromium: add rules, reorder them, test one (the intent
is judged by the LLM fake through ``route_call``), delete one. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from tests.admin.browser import chromium_page, screenshot
from tests.admin.conftest import PASSWORD
from tests.admin.live_server import LiveServer
from tests.conftest import make_settings
from tests.fakes.openai import FakeOpenAI, Reply, ToolCall

pytest.importorskip("playwright.sync_api")


async def _migrate(settings: object) -> None:
    runtime = Runtime.create(settings, "all")  # type: ignore[arg-type]
    try:
        await upgrade(runtime.engine)
    finally:
        await runtime.close()


def names(page: object) -> list[str]:
    return page.locator("#routing-rules td.rule-name").all_inner_texts()  # type: ignore[attr-defined]


def test_routing_section_in_chromium(tmp_path: Path) -> None:
    with FakeOpenAI() as llm:
        settings = make_settings(
            tmp_path,
            OPENAI_API_KEY=llm.api_key,
            PHONE_AGENT_LLM_BASE_URL=llm.url + "/v1",
            PHONE_AGENT_EMBEDDINGS_ENABLED="false",
            ADMIN_PASSWORD=PASSWORD,
            PHONE_AGENT_TRANSFER_DESTINATIONS="Claims=+15550100001; Sales=+15550100002",
        )
        asyncio.run(_migrate(settings))
        with LiveServer(create_app(settings)) as server, chromium_page() as page:
            page.on("dialog", lambda dialog: dialog.accept())  # "Delete the rule …?"
            page.goto(server.url + "/admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/admin")
            routing = page.locator("#routing")
            assert routing.locator("#no-rules").is_visible()

            # add two rules; a bad one is refused with the reason
            page.fill("#rule-name", "Claims line")
            page.fill("#rule-intents", "file a claim")
            page.select_option("#rule-action", "transfer")
            page.select_option("#rule-destination", "Claims")
            page.click("#rule-save")
            page.wait_for_url(server.url + "/admin?saved=routing#routing")
            page.fill("#rule-name", "Zero for a person")
            page.select_option("#rule-digit", "0")
            page.select_option("#rule-action", "tag")
            page.click("#rule-save")
            error = page.locator("#rule-form p.error")
            error.wait_for()
            assert "A tag action needs the tag." in error.inner_text()
            assert page.locator("#rule-name").input_value() == "Zero for a person"  # kept
            page.fill("#rule-tag", "asked-for-person")
            page.click("#rule-save")
            page.wait_for_url(server.url + "/admin?saved=routing#routing")
            assert names(page) == ["Claims line", "Zero for a person"]
            screenshot(routing, "routing-1-added")

            # reorder: the second rule moves up
            page.locator('#routing-rules tr[data-rule-name="Zero for a person"] button.move-up').click()
            page.wait_for_load_state()
            assert names(page) == ["Zero for a person", "Claims line"]
            assert page.locator("#routing-rules tr").nth(1).locator("td").first.inner_text() == "1"

            # test: the LLM recognises the intent in the sentence → the claims rule fires
            llm.script(
                Reply(tool_calls=[ToolCall("route_call", {"intent": "file a claim"})]), "Connecting you."
            )
            page.fill("#rt-when", "2026-12-02T10:00")
            page.fill("#rt-number", "+15550100009")
            page.fill("#rt-text", "A tree fell on my roof, I need to claim")
            page.click("#routing-test button[type=submit]")
            result = page.locator("#routing-test-result")
            result.wait_for()
            assert result.locator(".fired-rule").all_inner_texts() == ["Claims line"]
            assert "intent “file a claim”" in result.inner_text()
            assert "route_call" in [t["function"]["name"] for t in llm.chat_requests[-1]["tools"]]
            page.select_option("#rt-digit", "0")
            page.fill("#rt-text", "")
            page.click("#routing-test button[type=submit]")
            page.wait_for_load_state()
            assert page.locator("#routing-test-result .fired-rule").all_inner_texts() == ["Zero for a person"]
            screenshot(routing, "routing-2-tested")

            # delete
            page.locator('#routing-rules tr[data-rule-name="Claims line"] button.delete-rule').click()
            page.wait_for_url(server.url + "/admin?saved=routing#routing")
            assert names(page) == ["Zero for a person"]
            screenshot(routing, "routing-3-deleted")
