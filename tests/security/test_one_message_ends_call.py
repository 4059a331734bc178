"""Finding 7: one message ended a live call.

``{"event":{"x":1}}`` and ``{"event":["media"]}`` (unhashable events) and a very deep JSON array
(RecursionError) each escaped the serializer, which ends Pipecat's receive loop: the call hung up,
recorded as a normal "hangup". Binary frames or deep JSON before ``start`` wrote a traceback per
unauthenticated connection. Now any shape and depth is counted and ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from loguru import logger
from sqlalchemy import select
from websockets.asyncio.client import connect

from phone_agent.storage.tables import Call, CallTurn
from tests.fakes.audio import speech_wav
from tests.fakes.twilio_rest import new_sid
from tests.running_agent import SHORT_GREETINGS

DEEP_ARRAY = "[" * 200_000 + "]" * 200_000  # above the size limit: dropped unread
DEEP_WITHIN_LIMIT = "[" * 30_000 + "]" * 30_000  # 60 KB: parsed, too deep for the parser's stack
DEEP_OBJECT = '{"event":' * 5_000 + '"media"' + "}" * 5_000  # 45 KB
SHAPES = (
    json.dumps({"event": {"x": 1}}),
    json.dumps({"event": ["media"]}),
    json.dumps({"event": None}),
    json.dumps({"event": 7, "media": {"payload": "AAAA"}}),
    json.dumps({"event": "media", "media": {"payload": ["AAAA"]}}),
    json.dumps({"event": "mark", "mark": {"name": {"x": 1}}}),
    json.dumps({"event": "dtmf", "dtmf": {"digit": ["1"]}}),
    json.dumps({"event": "dtmf", "dtmf": {"digit": "not-a-key"}}),
    DEEP_ARRAY,
    DEEP_WITHIN_LIMIT,
    DEEP_OBJECT,
    b"\xff\xfe\x00binary",
)


@pytest.fixture
def log_lines() -> Any:
    """Every log line of the test: loguru's (ours, Pipecat's) and the standard library's (uvicorn's)."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)
    logger.remove(sink)


async def test_odd_messages_in_a_live_call_are_ignored(agent_factory: Any, db_rows: Any) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        agent.script_speech(["Do you have a table tonight?"], ["Yes, we have one at eight."])
        async with agent.caller() as caller:
            await caller.wait_for_agent_audio(timeout=30)
            await caller.wait_for_quiet(0.5, timeout=30)
            for message in SHAPES:
                await caller.send_raw(message)
            await asyncio.sleep(0.5)
            [live] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
            turn = await caller.say_wav(speech_wav("Do you have a table tonight"))
            await caller.wait_for_agent_audio(timeout=30, since=turn.speech_ended)
            await caller.wait_for_quiet(0.5, timeout=30)

    assert (live.ended_at, live.end_reason) == (None, None)  # still up after every shape
    assert caller.ended_by == "caller" and caller.protocol_errors == []
    [call] = await db_rows(select(Call).where(Call.call_sid == caller.call_sid))
    turns = await db_rows(select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq))
    assert [(t.role, t.text) for t in turns][-2:] == [
        ("caller", "Do you have a table tonight?"),
        ("agent", "Yes, we have one at eight."),
    ]


async def test_odd_messages_before_start_leave_no_traceback(agent_factory: Any, log_lines: list[str]) -> None:
    with agent_factory(**SHORT_GREETINGS) as agent:
        template = agent.caller()  # a valid token for a fresh call
        start = {
            "streamSid": new_sid("MZ"),
            "accountSid": new_sid("AC"),
            "callSid": template.call_sid,
            "tracks": ["inbound"],
            "customParameters": template.custom_parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        async with connect(agent.ws_url + "/media-stream", max_size=None, compression=None) as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            for message in SHAPES:
                await ws.send(message)
            await ws.send(json.dumps({"event": "start", "start": start, "streamSid": start["streamSid"]}))
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))  # the greeting
        async with connect(agent.ws_url + "/media-stream", max_size=None) as ws:  # junk only
            for message in (b"\x00" * 100, DEEP_WITHIN_LIMIT, DEEP_ARRAY) * 7:
                await ws.send(message)
            await asyncio.wait_for(ws.wait_closed(), timeout=30)
            refused = ws.close_code

    assert first["event"] in ("media", "mark") and first["streamSid"] == start["streamSid"]
    assert refused == 1008  # no start among the first messages
    assert not [line for line in log_lines if "Traceback" in line or "Exception in ASGI" in line]
