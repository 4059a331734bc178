"""What the owner reads: tool calls as sentences, end reasons in words, times in the business's zone;
and the settings a call uses, editable in those words (recording, returning greeting, facts)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from phone_agent.admin.owner_words import end_reason_words, local_time, tool_sentence
from phone_agent.brain.persona import greeting_for, persona_prompt

NY = "America/New_York"


def test_tool_calls_read_as_sentences() -> None:
    booked = {
        "name": "book_appointment",
        "arguments": {"start": "2026-12-08T10:00", "reason": "policy review", "duration_minutes": 45},
        "ok": True,
        "result": {"appointment_id": 7},
    }
    said = tool_sentence(booked, NY, caller_name="Maria Lopez")
    assert said == {
        "text": "Booked Tue 10:00 for Maria Lopez",
        "detail": "Tuesday 8 December 2026 · 45 min · policy review",
        "ok": "yes",
    }
    # a start with an offset is shown in the business's zone
    utc_start = {**booked, "arguments": {"start": "2026-12-08T15:00+00:00", "name": "Ann"}}
    assert tool_sentence(utc_start, NY)["text"] == "Booked Tue 10:00 for Ann"
    refused = {
        "name": "book_appointment",
        "arguments": {"start": "2026-12-08T10:00"},
        "ok": False,
        "result": {"alternatives": ["Tuesday at 10:30", "Tuesday at 11:00"]},
        "error": "That time is already taken.",
    }
    said = tool_sentence(refused, NY)
    assert said["text"] == "Could not book Tue 10:00 for the caller" and said["ok"] == "no"
    assert "offered Tuesday at 10:30, Tuesday at 11:00" in said["detail"]
    assert said["detail"].endswith("That time is already taken.")
    message = {
        "name": "take_message",
        "arguments": {"message": "Please call me  back", "name": "Bo"},
        "ok": True,
    }
    assert tool_sentence(message, NY)["text"] == "Took a message from Bo: “Please call me back”"
    sms = {
        "name": "send_sms",
        "arguments": {"body": "Your booking is Tuesday"},
        "ok": True,
        "result": {"sent_to": "+15550001111"},
    }
    assert tool_sentence(sms, NY)["text"] == "Texted +15550001111: “Your booking is Tuesday”"
    transfer = {
        "name": "transfer_call",
        "arguments": {"reason": "billing"},
        "ok": False,
        "error": "No handoff",
    }
    assert tool_sentence(transfer, NY) == {
        "text": "Could not put the caller through to a person",
        "detail": "reason: billing · No handoff",
        "ok": "no",
    }
    claims = {"name": "transfer_call", "arguments": {"reason": "claim", "destination": "Claims"}, "ok": True}
    assert tool_sentence(claims, NY)["text"] == "Put the caller through to the Claims line"
    other = {"name": "check_stock", "arguments": {"item_code": "A7"}, "ok": True}
    assert tool_sentence(other, NY)["text"] == "Used check stock (item code: A7)"


def test_end_reasons_and_times_in_words() -> None:
    assert (
        end_reason_words("tts_failed → voicemail")
        == "The voice stopped working; the caller could leave a voicemail"
    )
    assert (
        end_reason_words("overflow → transfer")
        == "All lines were busy; the caller was put through to a person"
    )
    assert end_reason_words("idle") == "Caller went silent"
    assert end_reason_words("something_new") == "Something new"
    assert end_reason_words(None) == ""
    moment = datetime(2026, 7, 4, 23, 15, tzinfo=UTC)
    assert local_time(moment, NY) == "Sat 4 Jul 2026, 19:15"
    assert local_time("2026-07-04T23:15:00", "Asia/Tokyo") == "Sun 5 Jul 2026, 08:15"  # stored UTC, no zone
    assert local_time(None, NY) == ""


def test_every_setting_a_call_uses_is_editable(admin: tuple[TestClient, str]) -> None:
    client, csrf = admin
    page = client.get("/admin").text
    for label in (
        "Greeting for callers it knows",
        "Facts about your business",
        "Time zone",
        "Put callers through to",
        "Record calls",
        "Recording notice",
    ):
        assert f">{label}" in page, label
    json = {"Accept": "application/json"}
    saved = client.post(
        "/admin/settings/personality",
        data={
            "csrf_token": csrf,
            "returning_greeting": "Welcome back, {caller_name}!",
            "business_facts": "Parking behind the building.",
        },
        headers=json,
    )
    assert saved.json()["changed"] == ["business_facts", "returning_greeting"]
    calls = client.post(
        "/admin/settings/calls",
        data={"csrf_token": csrf, "recording_enabled": "true", "recording_consent": "We record calls."},
        headers=json,
    )
    assert calls.json()["changed"] == ["recording_consent", "recording_enabled"]
    settings = client.app.state.runtime.current.settings
    assert greeting_for(settings, "Ana") == "We record calls. Welcome back, Ana!"
    assert "Parking behind the building." in persona_prompt(settings)
    assert '<option value="true" selected>On</option>' in client.get("/admin").text
    off = client.post(
        "/admin/settings/calls", data={"csrf_token": csrf, "recording_enabled": "false"}, headers=json
    )
    assert off.json()["changed"] == ["recording_enabled"]
    assert greeting_for(client.app.state.runtime.current.settings, "Ana") == "Welcome back, Ana!"
