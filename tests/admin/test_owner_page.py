"""The page an owner reads, in real headless Chromium at a laptop's 1280×800 and a phone's 390×844:
no sideways scroll, the navigation reachable (behind a menu button on the phone), tool calls as
sentences, times in the business's time zone, caller names linked, upload progress. Screenshots of
every section at both sizes go to test-artifacts/admin/ (owner-<width>-<section>.png)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from phone_agent.admin.owner_words import local_time
from phone_agent.app import create_app
from phone_agent.memory import MemoryItem
from phone_agent.runtime import Runtime
from phone_agent.storage.migrate import upgrade
from tests.admin.browser import chromium_page, screenshot
from tests.admin.conftest import PASSWORD
from tests.admin.helpers import BOOKING_SENTENCE, insert_calls
from tests.admin.live_server import LiveServer
from tests.conftest import make_settings

pytest.importorskip("playwright.sync_api")

SIZES = [(1280, 800), (390, 844)]
SECTIONS = ["calls", "call-agent", "voice", "personality", "knowledge", "routing", "notifications", "system"]
PAGES = ["inbox", "appointments", "analytics", "outbound"]  # the owner's other pages, linked from the header
TZ = "Europe/Berlin"
# Every value the progress bar is given is kept in sessionStorage (it survives the page's reload).
RECORD_PROGRESS = """
const own = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
Object.defineProperty(HTMLProgressElement.prototype, "value", {
  configurable: true,
  get() { return own.get.call(this); },
  set(v) {
    const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
    seen.push(Number(v));
    sessionStorage.setItem("progress", JSON.stringify(seen));
    own.set.call(this, v);
  },
});
"""


async def _seed(settings: Any) -> str:
    runtime = Runtime.create(settings, "all")
    try:
        await upgrade(runtime.engine)
        await insert_calls(runtime)
        await runtime.current.memory.store_memories(
            "+15551230001", [MemoryItem(content="Prefers morning appointments")], name="Maria Lopez"
        )
        async with runtime.sessions() as session:
            from sqlalchemy import select

            from phone_agent.storage.tables import Call

            started = await session.scalar(select(Call.started_at).where(Call.call_sid == "CA-done"))
        return local_time(started, TZ)
    finally:
        await runtime.close()


def no_sideways_scroll(page: Any) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], (
        f"the page scrolls sideways: {widths[0]} px wide in a {widths[1]} px window"
    )


def open_section(page: Any, width: int, name: str) -> None:
    """Reach a section through the navigation as the owner would (the menu first on a phone)."""
    toggle = page.locator(".menu-toggle")
    link = page.locator(f'nav a[href="#{name}"]')
    if width < 700:
        assert toggle.is_visible() and not link.is_visible()  # folded away until asked for
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
    else:
        assert not toggle.is_visible()
    assert link.is_visible()
    link.click()
    page.wait_for_function(f"location.hash === '#{name}'")
    if width < 700:
        assert not link.is_visible()  # the menu closes after a choice
    section = page.locator(f"#{name}")
    box = section.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5


def test_owner_page_at_laptop_and_phone_width(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        ADMIN_PASSWORD=PASSWORD,
        PHONE_AGENT_TIMEZONE=TZ,
        PHONE_AGENT_EMBEDDINGS_ENABLED="false",
    )
    started_local = asyncio.run(_seed(settings))
    app = create_app(settings)
    with LiveServer(app) as server, chromium_page() as page:
        page.add_init_script(RECORD_PROGRESS)
        page.goto(server.url + "/admin/login")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/admin")
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            page.goto(server.url + "/admin")
            no_sideways_scroll(page)
            assert "Berlin time" in page.locator(".zone-note").inner_text()
            for name in SECTIONS:
                open_section(page, width, name)
                no_sideways_scroll(page)
                screenshot(page.locator(f"#{name}"), f"owner-{width}-{name}")

            # the call log: local time, the caller by name with a link, the end in words
            row = page.locator("#call-log tr", has=page.locator('a[href="/admin/calls/CA-done"]'))
            assert started_local in row.inner_text()
            assert row.locator('a.caller[href="/admin/callers/%2B15551230001"]').inner_text() == "Maria Lopez"
            assert "Caller hung up" in row.inner_text()

            for name in PAGES:
                page.goto(f"{server.url}/admin/{name}")
                no_sideways_scroll(page)
                screenshot(page, f"owner-{width}-{name}")

            # one call: tool calls as sentences, local time
            page.goto(server.url + "/admin/calls/CA-done")
            no_sideways_scroll(page)
            transcript = page.locator("#transcript").inner_text()
            assert BOOKING_SENTENCE in transcript and "book_appointment" not in transcript
            assert started_local in page.locator("#call .meta").inner_text()
            screenshot(page, f"owner-{width}-call")
            page.locator("#call a.caller").click()
            page.wait_for_url(server.url + "/admin/callers/%2B15551230001")
            no_sideways_scroll(page)
            assert started_local in page.locator(".caller-calls").inner_text()
            screenshot(page, f"owner-{width}-caller")

        # a document goes up with a progress bar, then is listed
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(server.url + "/admin#knowledge")
        document = tmp_path / "price-list.txt"
        document.write_text("Home insurance starts at 30 dollars a month.\n" * 60_000)  # ~2.7 MB
        page.set_input_files("#upload-form input[type=file]", str(document))
        page.click("#upload-form button[type=submit]")
        page.wait_for_url(server.url + "/admin?saved=knowledge#knowledge", timeout=60_000)
        assert "price-list" in page.locator("#documents").inner_text()
        seen = json.loads(page.evaluate("sessionStorage.getItem('progress')"))
        assert seen[0] == 0 and 100 in seen, seen
        no_sideways_scroll(page)
        screenshot(page.locator("#knowledge"), "owner-390-knowledge-uploaded")
