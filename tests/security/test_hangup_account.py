"""Finding 12 (part): hang-up uses the configured Twilio account, not the one the websocket names.

The ``start`` message of a Media Stream carries an ``accountSid``; the agent used it (before the
configured ``TWILIO_ACCOUNT_SID``) to build the REST URL and credentials of the hang-up, so a
stream naming another account sent our auth token's request to that account's URL.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.twilio_rest import FakeTwilioREST
from tests.running_agent import SHORT_GREETINGS

FOREIGN_ACCOUNT = "AC" + "f" * 32


async def test_hang_up_goes_to_the_configured_account(
    agent_factory: Any, fake_twilio: FakeTwilioREST
) -> None:
    env = {
        "PHONE_AGENT_IDLE_TIMEOUT_SECONDS": "1.0",
        "PHONE_AGENT_IDLE_PROMPT": "Still there?",
        "PHONE_AGENT_IDLE_GOODBYE": "Goodbye.",
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        "PHONE_AGENT_TWILIO_API_BASE_URL": fake_twilio.url,
    }
    with agent_factory(**SHORT_GREETINGS | env) as agent:
        async with agent.caller(twilio_rest=fake_twilio, account_sid=FOREIGN_ACCOUNT) as caller:
            await caller.wait_for_close(timeout=40)
    assert caller.ended_by == "agent_hangup"
    hang_ups = [u for u in fake_twilio.call_updates if u["params"].get("Status") == "completed"]
    assert [u["sid"] for u in hang_ups] == [caller.call_sid]
    paths = [r.path for r in fake_twilio.requests_to(f"/Calls/{caller.call_sid}")]
    assert paths and all(f"/Accounts/{fake_twilio.account_sid}/" in p for p in paths)
    assert not fake_twilio.requests_to(FOREIGN_ACCOUNT)
