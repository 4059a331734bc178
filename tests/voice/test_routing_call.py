"""Routing rules in a live call, on the simulated caller and the Twilio, OpenAI and ElevenLabs fakes:
a key press (Twilio's `dtmf` message), a sentence, an intent the LLM reports with `route_call`,
turns not understood; the rule that fired is on the call's row."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from sqlalchemy import select

from phone_agent.brain.routing.rules import check_rule
from phone_agent.storage.db import create_engine, session_factory
from phone_agent.storage.routing import add_rule
from phone_agent.storage.tables import Call
from tests.fakes.audio import speech_wav
from tests.fakes.openai import Reply, ToolCall
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env

DESTINATIONS = {
    "PHONE_AGENT_TRANSFER_DESTINATIONS": "Claims=+15550100001; Sales=+15550100002",
    "PUBLIC_URL": "https://agent.example.com",
    "TWILIO_PHONE_NUMBER": "+15005550006",
    "PHONE_AGENT_OWNER_SMS_NUMBER": "+15550001111",
}


async def add_rules(agent: Any, *rules: tuple[str, dict, dict]) -> None:
    """Store rules in the running agent's database (as the admin page does)."""
    engine = create_engine(agent.settings.database_url)
    try:
        for name, conditions, action in rules:
            checked, act = check_rule(agent.settings, name=name, conditions=conditions, action=action)
            await add_rule(
                session_factory(engine), name=name, conditions=checked.model_dump(), action=act.model_dump()
            )
    finally:
        await engine.dispose()


def redirect_twiml(fake: FakeTwilioREST, call_sid: str) -> ET.Element:
    [update] = [u for u in fake.call_updates if u["sid"] == call_sid and "Twiml" in u["params"]]
    return ET.fromstring(update["params"]["Twiml"])


def agent_turns(agent: Any) -> list[dict[str, Any]]:
    """The LLM requests of the conversation (not the memory learning after the call)."""
    return [r for r in agent.openai.chat_requests if "tools" in r]


async def greeted(caller: Any) -> None:
    await caller.wait_for_agent_audio(timeout=20)
    await caller.wait_for_quiet(0.6, timeout=30)


async def test_digit_zero_transfers_to_the_destination(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS) as agent:
        await add_rules(agent, ("Press 0", {"digit": "0"}, {"type": "transfer", "destination": "Sales"}))
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            pressed = caller.received[-1][0] if caller.received else 0.0
            await caller.send_dtmf("0")
            await caller.wait_for_agent_audio(timeout=20, since=pressed)  # "Let me connect you with Sales."
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    twiml = redirect_twiml(fake_twilio, caller.call_sid)
    number = twiml.find("./Dial/Number")
    assert number is not None and number.text == "+15550100002"
    assert "caller+pressed+0" in number.get("url", "")  # the whisper: why the call comes
    assert agent_turns(agent) == []  # no LLM turn was needed
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.routing_rule == "Press 0" and call.end_reason == "routed → transfer"
    assert (
        call.routing_events[0]["stage"] == "call" and call.routing_events[0]["detail"] == "caller pressed 0"
    )


async def test_talk_to_a_person_transfers_without_asking_the_llm(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS) as agent:
        await add_rules(
            agent,
            (
                "Emergency",
                {"keywords": ["emergency"]},
                {"type": "sms", "to": "owner", "text": "Emergency call"},
            ),
            (
                "Person",
                {"keywords": ["talk to a person", "speak to a person"]},
                {"type": "transfer", "destination": "Claims"},
            ),
        )
        agent.script_speech(["Let me talk to a person, please."], [])
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            turn = await caller.say_wav(speech_wav("Let me talk to a person please"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    number = redirect_twiml(fake_twilio, caller.call_sid).find("./Dial/Number")
    assert number is not None and number.text == "+15550100001"
    assert agent_turns(agent) == []
    assert fake_twilio.messages == []  # the emergency rule did not fire
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.routing_rule == "Person" and call.end_reason == "routed → transfer"


async def test_intent_from_the_llm_transfers_and_other_rules_tag_and_text(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS) as agent:
        await add_rules(
            agent,
            ("Claims tag", {"intents": ["file a claim"]}, {"type": "tag", "tag": "claim"}),
            (
                "Claims SMS",
                {"intents": ["file a claim"]},
                {"type": "sms", "to": "owner", "text": "New claim"},
            ),
            (
                "Claims",
                {"intents": ["file a claim", "emergency"]},
                {"type": "transfer", "destination": "Claims"},
            ),
        )
        report = Reply(tool_calls=[ToolCall("route_call", {"intent": "file a claim"})])
        agent.script_speech(
            ["My car was hit, I need to make a claim."], [report, "Let me connect you with Claims."]
        )
        async with agent.caller(
            from_number="+15550104444", twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid
        ) as caller:
            await greeted(caller)
            turn = await caller.say_wav(speech_wav("My car was hit I need to make a claim"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_close(timeout=30)
    first = agent_turns(agent)[0]
    [tool] = [t for t in first["tools"] if t["function"]["name"] == "route_call"]
    assert tool["function"]["parameters"]["properties"]["intent"]["enum"] == ["file a claim", "emergency"]
    number = redirect_twiml(fake_twilio, caller.call_sid).find("./Dial/Number")
    assert number is not None and number.text == "+15550100001"
    [sms] = fake_twilio.messages
    assert sms["to"] == "+15550001111" and sms["body"] == "New claim (caller +15550104444)"
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.tags == ["claim"] and call.routing_rule == "Claims"
    assert [e["name"] for e in call.routing_events] == ["Claims tag", "Claims SMS", "Claims"]


async def test_turns_not_understood_go_to_voicemail(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS) as agent:
        await add_rules(agent, ("Lost", {"misunderstood_turns": 2}, {"type": "voicemail"}))
        unclear = Reply(tool_calls=[ToolCall("route_call", {"intent": "unclear"})])
        agent.script_speech(
            ["Blorf the wibble.", "Wibble the blorf."],
            [
                unclear,
                "Sorry, could you say that another way?",
                unclear,
                "I'll put you through to our voicemail.",
            ],
        )
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            turn = await caller.say_wav(speech_wav("Blorf the wibble"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_quiet(0.6, timeout=30)
            assert not fake_twilio.call_updates  # once is not enough
            turn = await caller.say_wav(speech_wav("Wibble the blorf"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
            await caller.wait_for_close(timeout=30)
    record = redirect_twiml(fake_twilio, caller.call_sid).find("./Record")
    assert record is not None and record.get("action") == "https://agent.example.com/phone/transfer/voicemail"
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.routing_rule == "Lost" and call.end_reason == "routed → voicemail"


async def test_persona_rule_switches_the_instructions(
    agent_factory: Any, fake_twilio: FakeTwilioREST
) -> None:
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS) as agent:
        brief = "It is after hours: only take messages, never book."
        await add_rules(agent, ("Brief", {"keywords": ["message"]}, {"type": "persona", "text": brief}))
        agent.script_speech(["I want to leave a message."], ["Of course, what is it?"])
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            turn = await caller.say_wav(speech_wav("I want to leave a message"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
    system = "\n".join(str(m["content"]) for m in agent_turns(agent)[0]["messages"] if m["role"] == "system")
    assert brief in system and agent.settings.instructions not in system


async def test_after_hours_persona_from_incoming_reaches_the_call(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    import httpx
    from twilio.request_validator import RequestValidator

    hours = {"PHONE_AGENT_BUSINESS_HOURS": "Mon-Sun 00:00-00:01"}  # after hours nearly all day
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS | hours) as agent:
        brief = "After hours: take a message for the morning."
        await add_rules(agent, ("Night", {"hours": "after_hours"}, {"type": "persona", "text": brief}))
        form = {"CallSid": "CA" + "7" * 32, "From": "+15550108888", "To": "+15005550006"}
        url = "https://agent.example.com/phone/incoming"
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(url, form)
        base = agent.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base) as http:
            answer = await http.post("/phone/incoming", data=form, headers={"X-Twilio-Signature": signature})
        stream = ET.fromstring(answer.text).find("./Connect/Stream")
        assert stream is not None  # a persona rule lets the agent take the call
        params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        agent.script_speech(["Hello, is anyone there?"], ["Hello! I can take a message."])
        async with agent.caller(
            from_number="+15550108888",
            call_sid=form["CallSid"],
            token=params["token"],
            twilio_rest=fake_twilio,
            account_sid=fake_twilio.account_sid,
        ) as caller:
            await greeted(caller)
            turn = await caller.say_wav(speech_wav("Hello is anyone there"))
            await caller.wait_for_agent_audio(timeout=20, since=turn.speech_ended)
    system = "\n".join(str(m["content"]) for m in agent_turns(agent)[0]["messages"] if m["role"] == "system")
    assert brief in system
    [call] = await db_rows(select(Call).where(Call.call_sid == form["CallSid"]))
    assert call.routing_rule == "Night" and call.routing_events[0]["stage"] == "incoming"


async def test_realtime_mode_digit_transfers(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST, fake_openai_realtime: Any
) -> None:
    from tests.voice.test_realtime_call import GREETING, realtime_env

    fake = fake_openai_realtime
    fake.script(GREETING, "Let me connect you with Sales.")
    hours = {"PHONE_AGENT_BUSINESS_HOURS": "Mon-Sun 00:00-24:00"}  # always open
    with agent_factory(**realtime_env(fake) | twilio_env(fake_twilio) | DESTINATIONS | hours) as agent:
        await add_rules(agent, ("Press 0", {"digit": "0"}, {"type": "transfer", "destination": "Sales"}))
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            await caller.send_dtmf("0")
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    number = redirect_twiml(fake_twilio, caller.call_sid).find("./Dial/Number")
    assert number is not None and number.text == "+15550100002"
    assert any("Let me connect you with Sales." in str(item["content"]) for item in fake.sessions[0]["items"])
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.routing_rule == "Press 0" and call.end_reason == "routed → transfer"


async def test_speech_nobody_could_transcribe_counts_as_not_understood(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = (
        SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS | {"PHONE_AGENT_IDLE_TIMEOUT_SECONDS": "1.5"}
    )
    with agent_factory(**env) as agent:
        await add_rules(agent, ("Mumble", {"misunderstood_turns": 1}, {"type": "voicemail"}))
        agent.script_speech([""], [])  # STT hears nothing in the caller's speech
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            await caller.say_wav(speech_wav("Mmm hmm mmm"))
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "redirect"
    assert redirect_twiml(fake_twilio, caller.call_sid).find("./Record") is not None
    spoken = [c.text.strip() for c in agent.elevenlabs.contexts.values()]
    assert spoken[-1] == "I'll put you through to our voicemail."  # instead of "could you say it again?"
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.routing_rule == "Mumble" and call.routing_events[0]["detail"] == "not understood 1 times"


async def test_message_and_hang_up_in_the_call(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    farewell = "We do not sell timeshares. Goodbye."
    with agent_factory(**SHORT_GREETINGS | twilio_env(fake_twilio) | DESTINATIONS) as agent:
        await add_rules(
            agent, ("Sales pitch", {"keywords": ["timeshare"]}, {"type": "hang_up", "text": farewell})
        )
        agent.script_speech(["I have a great timeshare offer for you."], [])
        async with agent.caller(twilio_rest=fake_twilio, account_sid=fake_twilio.account_sid) as caller:
            await greeted(caller)
            await caller.say_wav(speech_wav("I have a great timeshare offer for you"))
            await caller.wait_for_close(timeout=30)
    assert caller.ended_by == "agent_hangup" and agent_turns(agent) == []
    assert [c.text.strip() for c in agent.elevenlabs.contexts.values()][-1] == farewell
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.routing_rule == "Sales pitch" and call.end_reason == "routed → hang_up"
