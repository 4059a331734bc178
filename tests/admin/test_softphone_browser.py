"""The softphone in real headless Chromium with a fake microphone (an espeak-ng WAV): the owner logs in,
presses "Call", the agent greets, hears the owner's sentence (STT fake), answers (LLM fake) in a voice
(TTS fake) that reaches the page's audio graph non-silent; the call is in the call log with channel
"web" and its turns. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from tests.admin.browser import chromium_page, fake_microphone, screenshot
from tests.admin.conftest import PASSWORD
from tests.fakes.audio import speech_pcm16, write_pcm16_wav
from tests.running_agent import SHORT_GREETINGS

RATE = 16000
REPLY = "Of course. For what day and time?"


def owner_speech(path: Path) -> Path:
    """4 s of quiet (the greeting plays), one sentence, then 30 s of quiet (the file plays once)."""
    quiet = np.zeros(RATE * 4, dtype="<i2").tobytes()
    speech = speech_pcm16("I would like to book a table", RATE)
    return write_pcm16_wav(path, quiet + speech + quiet * 8, RATE)


def test_owner_calls_the_agent_in_chromium(agent_factory: Any, tmp_path: Path) -> None:
    microphone = owner_speech(tmp_path / "owner.wav")
    with agent_factory(ADMIN_PASSWORD=PASSWORD, **SHORT_GREETINGS) as agent:
        agent.script_speech(["I would like to book a table."], [REPLY])
        base = agent.ws_url.replace("ws://", "http://")
        with chromium_page(fake_microphone(microphone)) as page:
            errors: list[str] = []  # a script, worklet or socket refused (CSP), an exception
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            page.goto(base + "/admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/admin")
            page.fill("#softphone-number", "+1 555 010 0177")
            page.click("#softphone-call")
            page.wait_for_function("() => window.softphone.state === 'in-call'", timeout=20_000)
            # the greeting (~1.8 s of voice) and then the answer to the owner's sentence (~2.4 s)
            page.wait_for_function("() => window.softphone.audibleMs > 3500", timeout=60_000)
            screenshot(page.locator("#call-agent"), "softphone-in-call")
            stats = page.evaluate("window.softphone")
            call_sid = stats["callSid"]
            page.click("#softphone-hangup")
            page.wait_for_function("() => window.softphone.state === 'ended'")
            page.click("#softphone-transcript")
            page.wait_for_url(f"{base}/admin/calls/{call_sid}")
            transcript = page.locator("body").inner_text()
            screenshot(page, "softphone-transcript")
            page.goto(base + "/admin#calls")
            row = page.locator("#call-log tbody tr", has_text="+15550100177")
            channel = row.locator("td.channel").inner_text()
        assert [u for u in failed if not u.endswith("/favicon.ico")] == []  # (no favicon: a 404)
        assert [e for e in errors if "404 (Not Found)" not in e] == []

    assert stats["framesSent"] > 100 and stats["bytesReceived"] > 2 * RATE  # > 1 s of agent audio
    assert stats["audibleMs"] > 3500 and stats["peakRms"] > 0.05 and stats["peakLevel"] > 0.05
    assert stats["marksEchoed"] > 5
    assert "I would like to book a table." in transcript and REPLY in transcript
    assert channel == "web"
    with sqlite3.connect(tmp_path / "test.db") as db:
        [(call_id, from_number, status)] = db.execute(
            "SELECT id, from_number, status FROM calls WHERE call_sid = ? AND channel = 'web'", (call_sid,)
        ).fetchall()
        turns = db.execute(
            "SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", (call_id,)
        ).fetchall()
    assert (from_number, status) == ("+15550100177", "completed")
    assert turns == [
        ("agent", "Bella Cucina, this is Ava."),
        ("caller", "I would like to book a table."),
        ("agent", REPLY),
    ]
