"""Every call of a running agent gets its review row (summary, outcome) after it ends: a caller who
hangs up during the greeting (abandoned, no LLM request), a conversation (the LLM's structured
output, one request with the facts), a call Twilio reports missed before any stream (abandoned),
and a ``/v1/chat`` conversation, which is labelled a chat."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from phone_agent.storage.tables import Call
from tests.fakes.audio import speech_wav
from tests.fakes.openai import Reply, ToolCall
from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS, twilio_env

API_KEY = "sk-agent-test-key-0123456789"


async def reviewed(db_rows: Any, call_sid: str) -> Call:
    for _ in range(300):
        rows = await db_rows(select(Call).where(Call.call_sid == call_sid))
        if rows and rows[0].outcome is not None:
            return rows[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{call_sid} has no review")


async def test_every_kind_of_call_is_reviewed(
    agent_factory: Any, db_rows: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = {**twilio_env(fake_twilio), **SHORT_GREETINGS, "PHONE_AGENT_API_KEY": API_KEY}
    env["PUBLIC_URL"] = "https://agent.example.com"
    with agent_factory(**env) as agent:
        # 1. the caller hangs up while the greeting plays
        async with agent.caller(from_number="+15550200001") as silent:
            await silent.wait_for_agent_audio(timeout=20)
        quiet = await reviewed(db_rows, silent.call_sid)
        assert (quiet.outcome, quiet.summary_source) == ("abandoned", "rules")
        assert not [r for r in agent.openai.chat_requests if "response_format" in r]

        # 2. a conversation: the review comes from the model, with the facts, in one request
        agent.script_speech(["Are you open on Sunday?"], ["Yes, from noon to ten."])
        async with agent.caller(from_number="+15550200002") as talker:
            await talker.wait_for_agent_audio(timeout=20)
            await talker.wait_for_quiet(0.6, timeout=30)
            turn = await talker.say_wav(speech_wav("Are you open on Sunday"))
            await talker.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await talker.wait_for_quiet(0.6, timeout=30)
        answered = await reviewed(db_rows, talker.call_sid)
        assert (answered.outcome, answered.summary_source) == ("answered", "llm") and answered.summary
        [review_request] = [r for r in agent.openai.chat_requests if "response_format" in r]
        assert review_request["response_format"]["json_schema"]["name"] == "call_review"
        assert "Caller: Are you open on Sunday?" in review_request["messages"][1]["content"]

        # 3. a call that never reached the agent: Twilio's final status reviews it
        base = agent.ws_url.replace("ws://", "http://")
        form = {
            "CallSid": "CA-missed-1",
            "CallStatus": "no-answer",
            "From": "+15550200003",
            "To": "+15005550006",
        }
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(
            "https://agent.example.com/phone/status", form
        )
        async with httpx.AsyncClient(base_url=base) as http:
            status = await http.post("/phone/status", data=form, headers={"X-Twilio-Signature": signature})
            assert status.status_code == 204
            missed = await reviewed(db_rows, "CA-missed-1")
            assert (missed.outcome, missed.summary_source) == ("abandoned", "rules")

            # 4. a chat conversation that ends: reviewed and labelled a chat
            agent.openai.script(Reply(tool_calls=[ToolCall("end_call", {"reason": "done"})]), "Goodbye!")
            auth = {"authorization": f"Bearer {API_KEY}"}
            chat = (
                await http.post("/v1/chat", json={"caller": "+15550200004", "message": "Bye"}, headers=auth)
            ).json()
            assert chat["ended"] is True
            conversation = await reviewed(db_rows, chat["conversation_id"])
            assert (conversation.channel, conversation.outcome) == (
                "chat",
                "answered",
            ) and conversation.summary
