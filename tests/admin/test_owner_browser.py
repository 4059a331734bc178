"""The owner's side in real headless Chromium at 1280×800 and 390×844: a phone call (media stream
caller, STT/LLM/TTS fakes) takes a message; the owner got one SMS (Twilio fake) and one e-mail
(a real SMTP server); the call has its summary and outcome; the message is in the inbox with the
summary, the unread badge counts it, marking it done works, and no page scrolls sideways on a
phone. Screenshots of each section go to test-artifacts/admin/."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from phone_agent.storage.tables import Call, Caller, Message
from tests.admin.browser import chromium_page, screenshot
from tests.admin.conftest import PASSWORD
from tests.fakes.audio import speech_wav
from tests.fakes.openai import Reply, ToolCall
from tests.fakes.smtp import FakeSMTP
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, Agent, twilio_env

expect = pytest.importorskip("playwright.sync_api").expect

CALLER = "+15550104455"
OWNER_SMS = "+15550001111"
MESSAGE = "Please ask Bob to call me back about the renewal."
SUMMARY = "A caller asked Bob to call back about a policy renewal. The agent took a message for Bob."
REVIEW = {
    "name": None,
    "profile": {
        "topic": "policy renewal",
        "product_interest": None,
        "preferences": None,
        "open_requests": None,
    },
    "facts": [],
    "summary": SUMMARY,
    "intent": "Call back about the renewal",
    "outcome": "message_taken",
}
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def owner_env(twilio: FakeTwilioREST, smtp: FakeSMTP) -> dict[str, str]:
    return {
        **twilio_env(twilio),
        **SHORT_GREETINGS,
        "ADMIN_PASSWORD": PASSWORD,
        "TWILIO_PHONE_NUMBER": "+15005550006",
        "PHONE_AGENT_OWNER_SMS_NUMBER": OWNER_SMS,
        "PHONE_AGENT_OWNER_EMAIL": "owner@example.com",
        "PHONE_AGENT_SMTP_HOST": smtp.host,
        "PHONE_AGENT_SMTP_PORT": str(smtp.port),
        "PHONE_AGENT_SMTP_USERNAME": "owner-bot",
        "PHONE_AGENT_SMTP_PASSWORD": "smtp-secret-pw",
        "PHONE_AGENT_SMTP_FROM": "agent@example.com",
        "PHONE_AGENT_SMTP_STARTTLS": "false",
    }


async def call_and_leave_a_message(agent: Agent, twilio: FakeTwilioREST, db_rows: Any) -> Call:
    take = Reply(tool_calls=[ToolCall("take_message", {"message": MESSAGE})])
    agent.script_speech(
        ["Can you ask Bob to call me back about my renewal?"], [take, "I will pass that on to Bob."]
    )
    agent.openai.structured_for = lambda body: REVIEW
    async with agent.caller(from_number=CALLER, twilio_rest=twilio, account_sid=twilio.account_sid) as caller:
        await caller.wait_for_agent_audio(timeout=20)
        await caller.wait_for_quiet(0.6, timeout=30)
        turn = await caller.say_wav(speech_wav("Can you ask Bob to call me back about my renewal"))
        await caller.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
        await caller.wait_for_quiet(0.8, timeout=30)
    for _ in range(300):  # the review is written after the call, in the background
        [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
        if call.summary_source == "llm":
            return call
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {caller.call_sid} was not reviewed: {call.summary!r}")


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways at {width[1]} px: {width[0]} px wide"


async def test_a_message_taken_on_a_call_reaches_the_owners_inbox(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST, fake_smtp: FakeSMTP
) -> None:
    with agent_factory(**owner_env(fake_twilio, fake_smtp)) as agent:
        call = await call_and_leave_a_message(agent, fake_twilio, db_rows)
        assert (call.summary, call.outcome, call.intent) == (
            SUMMARY,
            "message_taken",
            "Call back about the renewal",
        )
        [message] = await db_rows(select(Message).where(Message.kind == "message"))
        assert message.call_id == call.id and message.body == MESSAGE and message.notified_at is not None
        [caller] = await db_rows(select(Caller).where(Caller.phone == CALLER))  # no name given: kept
        assert caller.name is None and call.caller_id == caller.id
        owner_texts = [r.form["Body"] for r in fake_twilio.requests if r.form.get("To") == OWNER_SMS]
        assert len(owner_texts) == 1 and MESSAGE in owner_texts[0]
        assert len(fake_smtp.emails) == 1 and MESSAGE in fake_smtp.emails[0].text
        base = agent.ws_url.replace("ws://", "http://")
        await asyncio.to_thread(owner_reads_the_inbox, base, call.call_sid)  # Playwright's sync API
        [message] = await db_rows(select(Message).where(Message.kind == "message"))
        assert message.done_at is not None and message.owner_note == "Bob called back at 4."
    assert len(fake_smtp.emails) == 1  # nothing else was sent to the owner


def owner_reads_the_inbox(base: str, call_sid: str) -> None:
    """The owner's session: inbox, done, filters and sections at desktop, then again on a phone."""
    with chromium_page() as page:
        errors: list[str] = []  # a script or style refused (CSP), an exception
        page.on("pageerror", lambda e: errors.append(str(e)))
        failed: list[str] = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.set_viewport_size(VIEWPORTS["desktop"])
        page.goto(base + "/admin/inbox")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/admin/inbox")
        assert page.locator("#inbox-unread").inner_text() == "1"  # counted before this page was read
        item = page.locator(".inbox-item", has_text=MESSAGE)
        expect(item).to_contain_text(SUMMARY)
        expect(item.locator("a.call-link")).to_have_attribute("href", f"/admin/calls/{call_sid}")
        screenshot(page, "owner-inbox-desktop")
        page.reload()
        assert page.locator("#inbox-unread").inner_text() == "0"  # read once shown
        item.locator("button", has_text="Mark done").click()
        page.wait_for_url(base + "/admin/inbox?state=open")
        expect(page.locator("#inbox-empty")).to_be_visible()
        page.click("a.filter[href='/admin/inbox?state=done']")
        expect(page.locator(".inbox-item.done", has_text=MESSAGE)).to_be_visible()
        screenshot(page, "owner-inbox-done-desktop")
        for name, path in (("analytics", "/admin/analytics"), ("appointments", "/admin/appointments")):
            page.goto(base + path)
            screenshot(page, f"owner-{name}-desktop")
        page.goto(base + "/admin#calls")
        row = page.locator("#call-log tbody tr", has_text=CALLER)
        expect(row).to_contain_text("Message taken")
        expect(row).to_contain_text(SUMMARY)
        screenshot(page.locator("#calls"), "owner-calls-desktop")
        page.goto(base + f"/admin/callers/{CALLER.replace('+', '%2B')}")
        expect(page.locator("#caller")).to_contain_text("Message taken")
        screenshot(page, "owner-caller-desktop")

        page.set_viewport_size(VIEWPORTS["phone"])
        page.goto(base + "/admin/inbox?state=done")
        no_sideways_scroll(page)
        page.locator(".inbox-item", has_text=MESSAGE).locator("button", has_text="Reopen").click()
        page.wait_for_url(base + "/admin/inbox?state=done")
        page.goto(base + "/admin/inbox")
        item = page.locator(".inbox-item", has_text=MESSAGE)
        expect(item).to_contain_text(SUMMARY)
        screenshot(page, "owner-inbox-phone")
        item.locator("input[name=note]").fill("Bob called back at 4.")
        item.locator("button", has_text="Save note").click()
        page.wait_for_url(base + "/admin/inbox?state=open")
        page.locator(".inbox-item", has_text=MESSAGE).locator("button", has_text="Mark done").click()
        page.wait_for_url(base + "/admin/inbox?state=open")
        expect(page.locator("#inbox-empty")).to_be_visible()
        for name, path in (("analytics", "/admin/analytics"), ("appointments", "/admin/appointments")):
            page.goto(base + path)
            no_sideways_scroll(page)
            screenshot(page, f"owner-{name}-phone")
        page.goto(base + "/admin/analytics")
        assert page.locator("[data-figure=calls]").inner_text() == "1"
        assert errors == []
        assert [u for u in failed if not u.endswith("/favicon.ico")] == []  # (no favicon: a 404)
