"""Outbound calls end to end: ``POST /v1/calls`` → the Twilio fake dials (status callbacks, answer
TwiML, async answering-machine detection, all signed) → a simulated callee on the Media Stream.

A person: the agent stays quiet (and deaf) until the verdict, then speaks the outbound greeting, and
the LLM knows the purpose. A machine: the voicemail message is spoken after the beep, then the agent
hangs up. Both calls are recorded like inbound ones, with every status callback on the call."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call, CallTurn, OutboundCall
from tests.fakes.audio import FRAME_BYTES, MS_PER_CHAR, is_silent, pcm16_to_ulaw, speech_wav
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.twilio_outbound import Callee
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.outbound import (
    AGENT_NUMBER,
    CALLEE,
    GREETING,
    PURPOSE,
    VOICEMAIL,
    outbound_env,
    place_call,
    wait_for,
)


def beep_frames(seconds: float = 0.4, hz: float = 1000.0) -> list[bytes]:
    """An answering machine's beep as 20 ms mu-law frames."""
    samples = int(8000 * seconds)
    pcm = b"".join(
        int(12000 * math.sin(2 * math.pi * hz * i / 8000)).to_bytes(2, "little", signed=True)
        for i in range(samples)
    )
    ulaw = pcm16_to_ulaw(pcm)
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES)]


def first_audible_at(callee: MediaStreamCaller) -> float | None:
    return next((a.at for a in callee.agent_audio if not is_silent(a.audio)), None)


async def test_a_person_hears_the_outbound_greeting_and_the_llm_knows_the_purpose(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    fake_twilio.network.callees[CALLEE] = Callee(answered_by=None)  # the verdict comes when the test says
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        agent.script_speech(["Yes, Friday still works."], ["Wonderful, see you on Friday."])
        response = await place_call(agent)
        assert response.status_code == 201, response.text
        call_sid = response.json()["call_sid"]
        async with await MediaStreamCaller.answer_outbound(fake_twilio, call_sid) as callee:
            await callee.say_wav(speech_wav("Hello"))  # "Hello?" before the verdict: not a turn
            await callee.send_silence(0.6)
            assert first_audible_at(callee) is None and agent.openai.transcription_requests == []
            verdict_at = time.monotonic()
            assert await fake_twilio.network.send_amd(call_sid, "human") == 204
            await callee.wait_for_agent_audio(timeout=20, since=verdict_at)
            await callee.wait_for_quiet(0.6, timeout=30)
            greeting_ms = len(callee.played_audio) / 8
            turn = await callee.say_wav(speech_wav("Yes Friday still works"))
            await callee.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await callee.wait_for_quiet(0.6, timeout=30)
        await wait_for(
            lambda: fake_twilio.calls[call_sid]["status"] == "completed", 10, "the call to complete"
        )
        await wait_for(
            lambda: any(
                w["params"].get("CallStatus") == "completed" and "status" in w
                for w in fake_twilio.network.webhooks
            ),
            10,
            "the completed callback",
        )
        await asyncio.sleep(0.3)  # the callback's write

    # what Twilio was asked: dial from the agent's number, async AMD, status callbacks, all to us
    [create] = [r for r in fake_twilio.requests_to("/Calls.json") if r.method == "POST"]
    params = create.form
    assert (params["To"], params["From"]) == (CALLEE, AGENT_NUMBER)
    assert params["MachineDetection"] == "DetectMessageEnd" and params["AsyncAmd"] == "true"
    public = agent.settings.public_url
    assert params["Url"].startswith(f"{public}/phone/outbound/answer?ref=")
    assert params["AsyncAmdStatusCallback"].startswith(f"{public}/phone/outbound/amd?ref=")
    assert fake_twilio.calls[call_sid]["_status_callback_events"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert all(w.get("status") in (200, 204) for w in fake_twilio.network.webhooks), (
        fake_twilio.network.webhooks
    )
    # the callee heard the greeting (not before the verdict), then the LLM's reply
    heard_at = first_audible_at(callee)
    assert heard_at is not None and heard_at >= verdict_at
    print(f"\nAMD verdict (human) → greeting audio at the callee: {1000 * (heard_at - verdict_at):.0f} ms")
    assert greeting_ms >= 0.8 * MS_PER_CHAR * len(GREETING)
    [request] = agent.openai.chat_requests[:1]
    system = "\n".join(str(m["content"]) for m in request["messages"] if m["role"] == "system")
    assert PURPOSE in system and "outbound call" in system
    assert [m["content"] for m in request["messages"] if m["role"] == "assistant"] == [GREETING]
    # recorded like an inbound call, with its status callbacks and verdict
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert (call.direction, call.from_number, call.to_number) == ("outbound", AGENT_NUMBER, CALLEE)
    assert call.status == "completed" and call.ended_at is not None
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns] == [
        ("agent", GREETING),
        ("caller", "Yes, Friday still works."),
        ("agent", "Wonderful, see you on Friday."),
    ]
    assert {"stt_final", "llm_first_token", "first_audio_sent"} <= set(turns[2].marks)
    [outbound] = await db_rows(select(OutboundCall).where(OutboundCall.call_sid == call_sid))
    assert outbound.answered_by == "human" and outbound.purpose == PURPOSE and outbound.call_id == call.id
    assert [e["status"] for e in outbound.events] == ["initiated", "ringing", "in-progress", "completed"]
    assert outbound.status == "completed"


async def test_a_machine_gets_the_voicemail_after_the_beep_then_the_call_ends(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    fake_twilio.network.callees[CALLEE] = Callee(answered_by=None)
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        response = await place_call(agent)
        call_sid = response.json()["call_sid"]
        async with await MediaStreamCaller.answer_outbound(fake_twilio, call_sid) as machine:
            await machine.say_wav(speech_wav("Hi, you have reached Sam. Please leave a message"))
            await machine.say_frames(beep_frames(), "beep")
            beep_ended = time.monotonic()
            assert await fake_twilio.network.send_amd(call_sid, "machine_end_beep") == 204
            await machine.wait_for_close(timeout=30)
        await wait_for(
            lambda: fake_twilio.calls[call_sid]["status"] == "completed", 10, "the call to complete"
        )
        await asyncio.sleep(0.5)  # the completed callback's write

    assert machine.ended_by == "agent_hangup"
    assert first_audible_at(machine) is not None and first_audible_at(machine) >= beep_ended
    heard_ms = len(machine.played_audio) / 8
    assert heard_ms >= 0.8 * MS_PER_CHAR * len(VOICEMAIL)  # the message played in full before the hang-up
    assert agent.openai.chat_requests == [] and agent.openai.transcription_requests == []
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert call.end_reason == "voicemail_left" and call.direction == "outbound"
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns] == [("agent", VOICEMAIL)]
    [outbound] = await db_rows(select(OutboundCall).where(OutboundCall.call_sid == call_sid))
    assert outbound.answered_by == "machine_end_beep" and outbound.status == "completed"


async def test_a_verdict_before_the_stream_opens_is_still_the_pipelines(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    """Twilio's verdict can overtake the stream's opening: the pipeline still leaves the message."""
    fake_twilio.network.callees[CALLEE] = Callee(answered_by="machine_end_beep", amd_delay=0.0)
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        call_sid = (await place_call(agent)).json()["call_sid"]
        await wait_for(lambda: fake_twilio.calls[call_sid].get("answered_by") is not None, 10, "the verdict")
        await asyncio.sleep(0.5)  # the stream opens late
        async with await MediaStreamCaller.answer_outbound(fake_twilio, call_sid) as machine:
            await machine.wait_for_close(timeout=30)
    assert machine.ended_by == "agent_hangup" and len(machine.played_audio) / 8 >= 0.8 * MS_PER_CHAR * len(
        VOICEMAIL
    )
    assert not any("Twiml" in u["params"] for u in fake_twilio.call_updates)  # no <Say> from Twilio's voice
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert call.end_reason == "voicemail_left"


async def test_the_callee_hangs_up_before_the_verdict(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    fake_twilio.network.callees[CALLEE] = Callee(answered_by=None)
    with agent_factory(public_url=True, **outbound_env(fake_twilio)) as agent:
        call_sid = (await place_call(agent)).json()["call_sid"]
        async with await MediaStreamCaller.answer_outbound(fake_twilio, call_sid) as callee:
            await callee.send_silence(0.5)
        await wait_for(
            lambda: any(
                w["params"].get("CallStatus") == "completed" and "status" in w
                for w in fake_twilio.network.webhooks
            ),
            10,
            "the completed callback",
        )
        assert await fake_twilio.network.send_amd(call_sid, "human") == 204  # too late: changes nothing
        await asyncio.sleep(1.5)
    assert first_audible_at(callee) is None and agent.openai.chat_requests == []
    [call] = await db_rows(select(Call).where(Call.call_sid == call_sid))
    assert call.status == "completed" and call.ended_at is not None
    assert await db_rows(select(CallTurn).where(CallTurn.call_id == call.id)) == []
