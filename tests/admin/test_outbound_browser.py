"""Outbound calls in real headless Chromium: "Call back" on a caller's page dials through Twilio,
"Never call this number" puts the caller on the do-not-call list, a call to them from the Outbound
calls page is then refused with the reason, and removing them from the list works.
Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from phone_agent.app import create_app
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from tests.admin.browser import chromium_page, screenshot
from tests.admin.conftest import PASSWORD
from tests.admin.helpers import insert_calls
from tests.admin.live_server import LiveServer
from tests.conftest import make_settings
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import twilio_env

pytest.importorskip("playwright.sync_api")
MARIA = "+15551230001"


async def _seed(settings: object) -> None:
    runtime = Runtime.create(settings, "all")  # type: ignore[arg-type]
    try:
        await upgrade(runtime.engine)
        await insert_calls(runtime)
    finally:
        await runtime.close()


def test_call_back_and_do_not_call_in_chromium(tmp_path: Path) -> None:
    with FakeTwilioREST() as twilio:
        settings = make_settings(
            tmp_path,
            ADMIN_PASSWORD=PASSWORD,
            TWILIO_PHONE_NUMBER="+15005550006",
            PUBLIC_URL="http://127.0.0.1:9",  # nobody there: the fake's callbacks go nowhere
            PHONE_AGENT_CALLING_HOURS="Mon-Sun 00:00-24:00",
            **twilio_env(twilio),
        )
        asyncio.run(_seed(settings))
        with LiveServer(create_app(settings)) as server, chromium_page() as page:
            page.goto(server.url + "/admin/login")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/admin")
            page.click("#outbound-link")
            page.wait_for_url(server.url + "/admin/outbound")

            page.goto(f"{server.url}/admin/callers/{MARIA}")
            page.fill("#call-back input[name=purpose]", "your Saturday booking")
            page.click("#call-back button[type=submit]")
            page.wait_for_url(re.compile(r"/admin/callers/(%2B|\+)15551230001\?saved=calling$"))
            assert "Calling now" in page.locator("#caller").inner_text()
            created = [r.form for r in twilio.requests_to("/Calls.json") if r.method == "POST"]
            assert [(f["To"], f["MachineDetection"]) for f in created] == [(MARIA, "DetectMessageEnd")]
            screenshot(page.locator("#caller"), "outbound-1-call-back")

            page.click("text=Never call this number")
            page.wait_for_url(re.compile(r"/admin/callers/(%2B|\+)15551230001\?saved=do-not-call$"))
            assert page.locator("#caller-do-not-call").is_visible()
            assert page.locator("#call-back").count() == 0

            page.goto(server.url + "/admin/outbound")
            assert MARIA in page.locator("#do-not-call-list").inner_text()
            assert "your Saturday booking" in page.locator("#outbound-calls").inner_text()
            page.fill("#place-call input[name=to]", "(555) 123-0001")
            page.fill("#place-call input[name=purpose]", "one more try")
            page.click("#place-call button[type=submit]")
            error = page.locator("#outbound-error")
            error.wait_for()
            assert "do-not-call list" in error.inner_text()
            assert len([r for r in twilio.requests_to("/Calls.json") if r.method == "POST"]) == 1
            screenshot(page, "outbound-2-refused")

            page.goto(server.url + "/admin/outbound")
            page.locator(f'#do-not-call-list li[data-phone="{MARIA}"] button').click()
            page.wait_for_url(server.url + "/admin/outbound?saved=do-not-call")
            assert page.locator("#do-not-call-list").count() == 0
