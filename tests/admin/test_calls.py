"""Calls section: live calls, call log, transcript with tool calls, latency waterfall (page + JSON)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from phone_agent.storage.db import transaction
from phone_agent.storage.tables import Call, Caller
from tests.admin.helpers import BOOKING_SENTENCE, insert_calls


def test_calls_section_lists_live_and_finished_calls(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    asyncio.run(insert_calls(client.app.state.runtime))
    data = client.get("/admin/api/calls").json()
    assert [c["call_sid"] for c in data["live"]] == ["CA-live"]
    assert [(c["call_sid"], c["duration_seconds"], c["end_reason"]) for c in data["log"]] == [
        ("CA-done", 42.0, "caller-hangup"),
        ("chat-1", None, None),  # a /v1/chat conversation is logged, never "live"
    ]
    assert client.get("/admin/api/calls", params={"phone": "999"}).json()["log"] == []
    page = client.get("/admin").text
    live = page[page.index('id="live-calls"') : page.index('id="call-log"')]
    assert "+15559990000" in live and "CA-done" not in live
    assert 'href="/admin/calls/CA-done"' in page and "Asked about Saturday hours." in page
    assert "CA-done" not in client.get("/admin?phone=5550001").text


def test_call_page_shows_transcript_tool_calls_and_waterfall(admin: tuple[TestClient, str]) -> None:
    client, _ = admin
    asyncio.run(insert_calls(client.app.state.runtime))
    detail = client.get("/admin/api/calls/CA-done").json()
    assert [t["text"] for t in detail["turns"]][0] == "Are you open on Saturday?"
    assert detail["turns"][3]["tool_calls"][0]["name"] == "book_appointment"
    first = detail["waterfall"][0]
    assert first["total_ms"] == 720
    assert [(s["stage"], s["start_ms"], s["end_ms"]) for s in first["segments"]] == [
        ("stt", 0, 180),
        ("llm", 180, 530),
        ("tts", 530, 690),
        ("send", 690, 720),
    ]
    page = client.get("/admin/calls/CA-done").text
    assert "Are you open on Saturday?" in page and BOOKING_SENTENCE in page and "interrupted" in page
    assert '"arguments"' not in page  # a sentence, not the stored JSON
    bars = re.findall(r'<rect class="bar (\w+)" data-stage="\w+" x="([\d.]+)" y="\d+" width="([\d.]+)"', page)
    assert len(bars) == 8 and [b[0] for b in bars[:4]] == ["stt", "llm", "tts", "send"]
    # one shared axis: turn 3's LLM stage (650 ms) is drawn wider than turn 1's (350 ms)
    widths = {(i // 4, b[0]): float(b[2]) for i, b in enumerate(bars)}
    assert widths[(1, "llm")] > widths[(0, "llm")] * 1.8
    assert "turn 1 · 720 ms" in page and "turn 3 · 1100 ms" in page
    assert client.get("/admin/calls/CA-nope").status_code == 404


def test_hang_up_only_live_calls(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    asyncio.run(insert_calls(client.app.state.runtime))
    assert client.post("/admin/calls/CA-done/hangup", data={"csrf_token": csrf}).status_code == 404
    assert client.post("/admin/calls/chat-1/hangup", data={"csrf_token": csrf}).status_code == 404
    sent = client.post("/admin/calls/CA-live/hangup", data={"csrf_token": csrf}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/admin?saved=hangup#calls"
    assert "Hang-up sent to the call." in client.get(sent.headers["location"]).text
    assert "call.hangup" in client.get("/admin").text  # in the audit log


def visible(html: str) -> str:
    """The text of an HTML fragment, without tags and their attributes."""
    return re.sub(r"<[^>]*>", " ", html)


async def _insert_known_and_unknown_callers(runtime: object) -> None:
    start = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # 07:30 in Los Angeles, 16:30 in Berlin
    async with transaction(runtime.sessions) as s:  # type: ignore[attr-defined]
        s.add(Caller(phone="+15551230002", name="Ana Ruiz"))
        s.add(
            Call(
                call_sid="CA-ana",
                from_number="+15551230002",
                status="completed",
                started_at=start,
                ended_at=start.replace(minute=32, second=5),
                end_reason="stt_failed → voicemail",
            )
        )
        s.add(
            Call(
                call_sid="CA-anon",
                from_number="+15551239999",
                status="completed",
                started_at=start,
                ended_at=start.replace(minute=31),
                end_reason="agent_hangup",
            )
        )


def test_calls_show_local_time_caller_names_and_reasons_in_words(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    asyncio.run(_insert_known_and_unknown_callers(client.app.state.runtime))
    saved = client.post(
        "/admin/settings/personality",
        data={"csrf_token": csrf, "timezone": "America/Los_Angeles"},
        headers={"Accept": "application/json"},
    )
    assert saved.json()["changed"] == ["timezone"]
    page = client.get("/admin").text
    rows = {
        sid: row for row in page.split("<tr>") for sid in ("CA-ana", "CA-anon") if f'/calls/{sid}"' in row
    }
    ana, anon = rows["CA-ana"], rows["CA-anon"]
    assert "Tue 1 Dec 2026, 07:30" in visible(ana) and "15:30" not in visible(ana)
    assert 'href="/admin/callers/%2B15551230002">Ana Ruiz</a>' in ana
    assert (
        "2 min 5 s" in ana and "Speech recognition stopped working; the caller could leave a voicemail" in ana
    )
    assert 'href="/admin/callers/%2B15551239999">+15551239999</a>' in anon  # no name yet: the number links
    assert "Agent said goodbye and hung up" in anon
    assert "Los Angeles time (PST)" in page
    call = client.get("/admin/calls/CA-ana").text
    assert 'Call from <a class="caller" href="/admin/callers/%2B15551230002">Ana Ruiz</a>' in call
    assert "Tue 1 Dec 2026, 07:30" in call
    caller = client.get("/admin/callers/+15551230002").text
    assert "Tue 1 Dec 2026, 07:30" in caller
    bad = client.post(
        "/admin/settings/personality",
        data={"csrf_token": csrf, "timezone": "America/Los_Angles"},
        headers={"Accept": "application/json"},
    )
    assert bad.status_code == 422 and "America/Los_Angeles" in bad.json()["errors"]["timezone"]
