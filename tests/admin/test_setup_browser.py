"""The setup checklist in real headless Chromium: with no keys the page opens on it; a wrong OpenAI key
typed in is "Key rejected" by the provider fake, the right one is OK, and once saved the item is gone.
Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

from pathlib import Path

from phone_agent.app import create_app
from tests.admin.browser import chromium_page, screenshot
from tests.admin.conftest import PASSWORD
from tests.admin.live_server import LiveServer
from tests.conftest import make_settings
from tests.fakes.openai import FakeOpenAI

WRONG = "sk-wrong-key-0123456789abcdef"


def test_newcomer_sets_up_the_openai_key(tmp_path: Path) -> None:
    with FakeOpenAI() as openai:
        settings = make_settings(
            tmp_path,
            ADMIN_PASSWORD=PASSWORD,
            PHONE_AGENT_OPENAI_BASE_URL=openai.url + "/v1",
            PHONE_AGENT_LLM_BASE_URL=openai.url + "/v1",
            PHONE_AGENT_EMBEDDINGS_ENABLED="false",
        )
        with LiveServer(create_app(settings)) as server, chromium_page() as page:
            page.goto(server.url + "/admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/admin")
            setup = page.locator("#setup")
            assert setup.locator("details").get_attribute("open") is not None  # a needed key is missing
            first_card = page.locator("main > section").first.get_attribute("id")
            item = page.locator("#setup-openai")
            assert "platform.openai.com" in item.inner_text()
            screenshot(setup, "setup-checklist")

            item.locator("input[name=openai_api_key]").fill(WRONG)
            item.locator("button.test-connection").click()
            result = item.locator(".test-result")
            page.wait_for_function(
                "() => document.querySelector('#setup-openai .test-result').dataset.status !== undefined"
            )
            rejected = (result.get_attribute("data-status"), result.inner_text())

            item.locator("input[name=openai_api_key]").fill(openai.api_key)
            item.locator("button.test-connection").click()
            page.wait_for_function(
                "() => document.querySelector('#setup-openai .test-result').dataset.status === 'ok'"
            )
            accepted = result.inner_text()
            screenshot(item, "setup-openai-tested")
            item.locator("button[type=submit]").click()
            page.wait_for_function(
                "() => document.querySelector('#setup-openai .form-status').textContent.startsWith('Saved')"
            )
            page.reload()
            remaining = [s.get_attribute("id") for s in page.locator("#setup .setup-item").all()]
            html = page.content()

    assert first_card == "setup"  # the page opens on the checklist
    assert rejected[0] == "key_rejected" and rejected[1].startswith("Key rejected (HTTP 401")
    assert WRONG not in rejected[1]
    assert accepted.startswith("OK: Key accepted")
    assert "setup-openai" not in remaining and "setup-elevenlabs" in remaining
    assert openai.api_key not in html
    assert [r.path for r in openai.requests].count("/v1/models") == 2  # one cheap request per test
