"""``POST /v1/calls`` refusals (nothing dialled) and the signed Twilio callbacks of an outbound call
that never reaches a person (busy, no answer): every status stored on the call."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.outbound import add_do_not_call
from phone_agent.storage.tables import Call, CallTurn, OutboundCall
from tests.fakes.twilio_outbound import Callee
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.outbound import API_KEY, CALLEE, VOICEMAIL, outbound_env, place_call, wait_for

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def calls_created(twilio: FakeTwilioREST) -> list[Any]:
    return [r for r in twilio.requests_to("/Calls.json") if r.method == "POST"]


async def put_on_do_not_call(agent: Any, phone: str) -> None:
    engine = create_engine(agent.settings.database_url)
    try:
        await add_do_not_call(session_factory(engine), phone, note="asked us not to call", added_by="test")
    finally:
        await engine.dispose()


async def test_do_not_call_number_is_refused_with_a_clear_error(
    agent_factory: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        await put_on_do_not_call(agent, CALLEE)
        refused = await place_call(agent, to="+1 (555) 123-0077")  # the same number, written nationally
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "do_not_call" and error["type"] == "call_refused"
    assert "+15551230077 is on the do-not-call list" in error["message"]
    assert calls_created(fake_twilio) == []


async def test_outside_calling_hours_is_refused_and_says_when_calling_opens(
    agent_factory: Any, fake_twilio: FakeTwilioREST, db_rows: Any
) -> None:
    today = datetime.now(ZoneInfo("America/New_York")).weekday()
    other_day = DAYS[(today + 2) % 7]
    env = outbound_env(fake_twilio, PHONE_AGENT_CALLING_HOURS=f"{other_day} 09:00-10:00")
    with agent_factory(public_url=True, **env) as agent:
        refused = await place_call(agent)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "outside_calling_hours"
    assert f"{other_day} 09:00-10:00" in error["message"] and "Calling opens next on" in error["message"]
    assert calls_created(fake_twilio) == [] and await db_rows(select(OutboundCall)) == []


async def test_bad_input_and_missing_key_are_refused(agent_factory: Any, fake_twilio: FakeTwilioREST) -> None:
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        bad_number = await place_call(agent, to="12")
        http = agent.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient() as client:
            no_key = await client.post(f"{http}/v1/calls", json={"to": CALLEE, "purpose": "x"})
            no_purpose = await client.post(
                f"{http}/v1/calls", json={"to": CALLEE}, headers={"Authorization": f"Bearer {API_KEY}"}
            )
    assert bad_number.status_code == 422 and bad_number.json()["error"]["code"] == "invalid_number"
    assert no_key.status_code == 401
    assert no_purpose.status_code == 422
    assert calls_created(fake_twilio) == []


async def test_busy_callee_every_status_callback_is_stored(
    agent_factory: Any, fake_twilio: FakeTwilioREST, db_rows: Any
) -> None:
    fake_twilio.network.callees[CALLEE] = Callee(outcome="busy")
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        placed = await place_call(agent)
        assert placed.status_code == 201 and placed.json()["status"] == "queued"
        call_sid = placed.json()["call_sid"]
        await wait_for(
            lambda: any(
                w["params"].get("CallStatus") == "busy" and "status" in w
                for w in fake_twilio.network.webhooks
            ),
            10,
            "the busy callback",
        )
        await asyncio.sleep(0.3)
        http = agent.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient() as client:
            shown = await client.get(
                f"{http}/v1/calls/{call_sid}", headers={"Authorization": f"Bearer {API_KEY}"}
            )
            # a forged callback is refused and changes nothing
            status_url = fake_twilio.calls[call_sid]["_params"]["StatusCallback"]
            form = {"CallSid": call_sid, "CallStatus": "completed"}
            forged = await client.post(status_url, data=form, headers={"X-Twilio-Signature": "forged"})
            wrong_key = RequestValidator("not-the-token").compute_signature(status_url, form)
            forged_too = await client.post(status_url, data=form, headers={"X-Twilio-Signature": wrong_key})

    assert forged.status_code == 403 and forged_too.status_code == 403
    assert all(w.get("status") == 204 for w in fake_twilio.network.webhooks)
    assert not any(w["url"].endswith("/answer") for w in fake_twilio.network.webhooks)  # never answered
    body = shown.json()
    assert body["status"] == "busy" and body["direction"] == "outbound"
    assert [e["status"] for e in body["events"]] == ["initiated", "ringing", "busy"]
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert (call.direction, call.status, call.end_reason, call.to_number) == (
        "outbound",
        "busy",
        "busy",
        CALLEE,
    )
    assert call.ended_at is not None and call.stream_started_at is None


async def test_a_closed_day_is_outside_calling_hours(agent_factory: Any, fake_twilio: FakeTwilioREST) -> None:
    today = datetime.now(ZoneInfo("America/New_York")).date()
    with agent_factory(
        public_url=True, **outbound_env(fake_twilio, PHONE_AGENT_CLOSED_DAYS=today.isoformat())
    ) as agent:
        refused = await place_call(agent)
    assert refused.status_code == 409 and "a closed day" in refused.json()["error"]["message"]
    assert calls_created(fake_twilio) == []


async def test_a_machine_on_a_call_no_stream_holds_gets_the_voicemail_in_twilios_voice(
    agent_factory: Any, fake_twilio: FakeTwilioREST, db_rows: Any
) -> None:
    fake_twilio.network.callees[CALLEE] = Callee(answered_by="machine_end_beep", amd_delay=0.5)
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        call_sid = (await place_call(agent)).json()["call_sid"]  # nobody opens the media stream
        await wait_for(
            lambda: any(
                w["params"].get("CallStatus") == "completed" and "status" in w
                for w in fake_twilio.network.webhooks
            ),
            15,
            "the completed callback",
        )
        await asyncio.sleep(0.3)
    [update] = [u["params"] for u in fake_twilio.call_updates if u["sid"] == call_sid]
    assert update["Twiml"].count("<Say>") == 1 and "<Hangup" in update["Twiml"]
    assert fake_twilio.calls[call_sid]["_said"] == [VOICEMAIL]
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert (call.end_reason, call.status) == ("voicemail_left", "completed")
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id))
    assert [(t.role, t.text) for t in turns] == [("agent", VOICEMAIL)]
    [outbound] = await db_rows(select(OutboundCall).where(OutboundCall.call_sid == call_sid))
    assert outbound.answered_by == "machine_end_beep" and outbound.status == "completed"


async def test_do_not_call_list_over_the_api(agent_factory: Any, fake_twilio: FakeTwilioREST) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        http = agent.ws_url.replace("ws://", "http://") + "/v1/do-not-call"
        async with httpx.AsyncClient(headers=auth) as client:
            added = await client.post(http, json={"phone": "(555) 123-0077", "note": "asked on the phone"})
            again = await client.post(http, json={"phone": CALLEE})
            bad = await client.post(http, json={"phone": "12"})
            listed = await client.get(http)
            refused = await place_call(agent)
            removed = await client.delete(f"{http}/{CALLEE}")
            gone = await client.delete(f"{http}/{CALLEE}")
            no_key = await client.get(http, headers={"Authorization": "Bearer nope"})
    assert added.status_code == 201 and added.json() == {"phone": CALLEE, "added": True}
    assert again.json()["added"] is False and bad.status_code == 422
    assert [(n["phone"], n["note"], n["added_by"]) for n in listed.json()["numbers"]] == [
        (CALLEE, "asked on the phone", "api")
    ]
    assert refused.status_code == 403 and calls_created(fake_twilio) == []
    assert removed.json() == {"phone": CALLEE, "removed": True} and gone.status_code == 404
    assert no_key.status_code == 401
