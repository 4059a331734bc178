"""A full or lagging process takes no new call: /phone/incoming and the media stream hand the caller
to the fallback action while the running calls keep the event loop."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from phone_agent.app import create_app
from phone_agent.ops.load import RESERVATION_SECONDS, WORST_LAG_WINDOW_SECONDS, LoadMonitor
from phone_agent.ops.metrics import REGISTRY, exposition
from phone_agent.runtime import Runtime
from phone_agent.storage.tables import Call
from tests.api.test_phone import AUTH_TOKEN, FORM, PUBLIC, VOICE_KEYS, sign
from tests.conftest import make_settings
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS


def refused_count() -> float:
    """``phone_agent_calls_refused_total{reason="overflow"}`` from this process's exposition."""
    for line in exposition().decode().splitlines():
        if line.startswith('phone_agent_calls_refused_total{reason="overflow"}'):
            return float(line.split()[-1])
    return 0.0


def test_capacity_counts_calls_in_progress() -> None:
    load = LoadMonitor(max_calls=2, max_lag_ms=0)
    with load.call():
        assert load.full_reason() is None
        with load.call():
            assert load.full_reason() == "at capacity (2 of 2 calls)"
        assert load.full_reason() is None
    assert load.calls == 0 and LoadMonitor(max_calls=0, max_lag_ms=0).full_reason() is None


def test_a_call_counts_from_its_webhook_until_its_stream_takes_over(monkeypatch: Any) -> None:
    load = LoadMonitor(max_calls=2, max_lag_ms=0)
    load.reserve("CA1")
    load.reserve("CA2")  # two answered with a stream, neither stream open yet: full already
    assert load.full_reason() == "at capacity (2 of 2 calls)"
    assert load.full_reason(exclude="CA2") is None  # a retried webhook of CA2 is not its own rival
    with load.call("CA1"):  # CA1's stream starts: its reservation becomes the call, counted once
        assert (load.calls, load.reserved()) == (1, 1) and load.full_reason() is not None
    load.release("CA2")  # handed over at its stream's start
    assert load.full_reason() is None
    load.reserve("CA3")  # a stream that never comes stops counting after RESERVATION_SECONDS
    later = time.monotonic() + RESERVATION_SECONDS + 1
    monkeypatch.setattr("phone_agent.ops.load.time.monotonic", lambda: later)
    assert load.reserved() == 0


async def test_a_blocked_event_loop_counts_as_full() -> None:
    load = LoadMonitor(max_calls=0, max_lag_ms=100)
    watcher = asyncio.create_task(load.watch_lag())
    try:
        await asyncio.sleep(0.15)
        time.sleep(0.6)  # noqa: ASYNC251 - on purpose: something hogs the loop (a synchronous parse)
        await asyncio.sleep(0.15)
        assert load.lag_ms > 100 and "event loop" in (load.full_reason() or "")
        for _ in range(40):  # recovers once the loop is free again
            await asyncio.sleep(0.1)
            if load.full_reason() is None:
                break
        assert load.full_reason() is None
    finally:
        watcher.cancel()


def lag_samples_over(seconds: str) -> float:
    """Event-loop lag samples later than ``seconds`` (a bucket bound), from this process's registry."""
    name = "phone_agent_event_loop_lag_seconds"
    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    return count - (REGISTRY.get_sample_value(f"{name}_bucket", {"le": seconds}) or 0.0)


async def test_a_stall_shows_as_the_worst_lag_of_the_minute_and_in_the_histogram() -> None:
    load = LoadMonitor(max_calls=3, max_lag_ms=1000)
    over_quarter = lag_samples_over("0.25")
    watcher = asyncio.create_task(load.watch_lag())
    try:
        await asyncio.sleep(0.25)
        assert load.worst_lag_ms() < 100  # an idle loop keeps time
        time.sleep(0.4)  # noqa: ASYNC251 - on purpose: one stall, as a burst of work would make
        for _ in range(5):  # the smoothed lag forgets the stall; the worst of the minute keeps it
            await asyncio.sleep(0.1)
        status = load.status()
    finally:
        watcher.cancel()
    assert 250 <= status["worst_lag_last_minute_ms"] < 2000  # the probe due during the stall: 300-400
    assert status["event_loop_lag_ms"] < status["worst_lag_last_minute_ms"]
    assert status["calls"] == 0 and status["max_calls"] == 3 and status["full"] is None
    assert lag_samples_over("0.25") - over_quarter >= 1


def test_the_worst_lag_lapses_after_a_minute(monkeypatch: Any) -> None:
    load = LoadMonitor(max_calls=0, max_lag_ms=0)
    load.record_lag(450.0)
    load.record_lag(3.0)
    assert load.worst_lag_ms() == 450.0
    later = time.monotonic() + WORST_LAG_WINDOW_SECONDS + 1
    monkeypatch.setattr("phone_agent.ops.load.time.monotonic", lambda: later)
    assert load.worst_lag_ms() == 0.0
    load.record_lag(7.0)  # and the old samples are let go
    assert load.worst_lag_ms() == 7.0 and len(load._recent_lags) == 1
    assert load.status()["max_calls"] is None and load.status()["max_event_loop_lag_ms"] is None


def test_incoming_call_beyond_capacity_gets_the_overflow_twiml(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_URL=PUBLIC,
        PHONE_AGENT_MAX_CALLS_PER_WORKER="5",
        **VOICE_KEYS,
    )
    with TestClient(create_app(settings)) as client:
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        headers = {"X-Twilio-Signature": sign(PUBLIC + "/phone/incoming", FORM)}
        runtime.load.calls = 4
        taken = client.post("/phone/incoming", data=FORM, headers=headers)
        runtime.load.calls = 5  # five calls running: the sixth is not taken
        before = refused_count()
        refused = client.post("/phone/incoming", data=FORM, headers=headers)

        async def end_reason() -> str | None:
            async with runtime.sessions() as session:
                return (await session.execute(select(Call.end_reason))).scalar_one()

        assert client.portal is not None
        reason = client.portal.call(end_reason)
    assert ET.fromstring(taken.text).find("./Connect/Stream") is not None
    root = ET.fromstring(refused.text)
    assert root.find("./Connect") is None and "All our lines are busy" in (root[0].text or "")
    assert root.find("./Record") is not None and reason == "overflow → voicemail"
    assert refused_count() == before + 1


async def test_a_full_voice_bridge_hands_the_stream_to_the_fallback_action(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = {
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        "PHONE_AGENT_TWILIO_API_BASE_URL": fake_twilio.url,
        "PHONE_AGENT_HANDOFF_NUMBER": "+15557654321",
        "PHONE_AGENT_MAX_CALLS_PER_WORKER": "1",
    }
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        agent.app.state.runtime.load.calls = 1  # one call already running in this process
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await caller.wait_for_close(timeout=20)
    assert caller.ended_by == "redirect" and caller.agent_audio == []
    [update] = caller.redirects
    assert "All our lines are busy" in update["Twiml"] and "<Dial" in update["Twiml"]
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.end_reason == "overflow → transfer"
