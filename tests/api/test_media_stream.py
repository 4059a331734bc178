"""/media-stream refuses streams without a valid token for their call, and keeps serving others."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from phone_agent.storage.tables import Call
from phone_agent.telephony.stream_token import issue_stream_token
from tests.fakes.audio import is_silent
from tests.running_agent import SHORT_GREETINGS

SECRET = b"voice-tests-secret"  # PHONE_AGENT_SESSION_SECRET of the test agent


async def test_bad_tokens_close_the_socket(agent_factory: Any, db_rows: Any) -> None:
    tokens = {
        "missing": "",
        "garbage": "not.a-token",
        "forged": issue_stream_token(b"not-the-key", call_sid="CA1", caller=None, ttl_seconds=60),
        "expired": issue_stream_token(SECRET, call_sid="CA1", caller=None, ttl_seconds=-5),
        "other-call": issue_stream_token(SECRET, call_sid="CAother", caller=None, ttl_seconds=60),
    }
    refused = {}
    with agent_factory(**SHORT_GREETINGS) as agent:
        for kind, token in tokens.items():
            async with agent.caller(token=token, call_sid="CA1") as caller:
                await caller.wait_for_close(timeout=10)
            refused[kind] = caller
        async with agent.caller() as good:  # the server is still healthy
            await good.wait_for_agent_audio(timeout=20)
    for kind, caller in refused.items():
        assert (kind, caller.close_code, caller.ended_by) == (kind, 1008, "server_closed")
        assert not [a for a in caller.agent_audio if not is_silent(a.audio)], kind
    assert await db_rows(select(Call).where(Call.call_sid == "CA1")) == []
    assert len(await db_rows(select(Call).where(Call.call_sid == good.call_sid))) == 1
