"""Abusive Media Stream connections (issue 13), for ``bench/abuse.py``: every bad shape the issue
names, each sent the way an attacker would, counted by category with the server's answer.

Two kinds of connection:

- **in a call**: a signed ``/phone/incoming`` gives a valid token; a ``MediaStreamCaller`` starts
  the stream (its 20 ms uplink keeps running) and the junk is sent among its media. The server may
  keep the call up (the junk is counted and ignored) or close it (a frame above its size limit:
  1009); a call we end ourselves is ``open (we hung up)``.
- **before start** (raw websocket): junk with no ``start``, bad or replayed tokens, frames above the
  size limit. The server must refuse (1008) or close (1009) without a traceback.

``Tally`` holds what was sent (messages per category) and how each connection ended.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests.fakes.audio import FRAME_BYTES, ULAW_SILENCE
from tests.fakes.media_stream_caller import MediaStreamCaller
from tests.fakes.twilio_rest import new_sid
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.callers import CallPlan

DEEP_ARRAY = "[" * 200_000 + "]" * 200_000  # 400 KB: above the server's frame limit
DEEP_WITHIN_LIMIT = "[" * 30_000 + "]" * 30_000  # 60 KB: parsed, too deep for the parser's stack
ONE_MEGABYTE = "x" * (1 << 20)
SILENCE = base64.b64encode(ULAW_SILENCE * FRAME_BYTES).decode()
FIELD_VALUES: tuple[Any, ...] = (None, 7, 1.5, True, [], {}, "x", ["media"], {"x": 1})
TWILIO_FIELDS = {  # the fields of each message Twilio sends, as a template to corrupt one at a time
    "media": {"event": "media", "sequenceNumber": "3", "streamSid": "MZ",
              "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": SILENCE}},
    "mark": {"event": "mark", "sequenceNumber": "4", "streamSid": "MZ", "mark": {"name": "m1"}},
    "dtmf": {"event": "dtmf", "sequenceNumber": "5", "streamSid": "MZ",
             "dtmf": {"track": "inbound_track", "digit": "1"}},
}  # fmt: skip
PlanCall = Callable[[int], Awaitable[CallPlan]]


def wrong_types() -> list[str]:
    """Every field (and sub-field) of media, mark and dtmf messages set to every wrong type."""
    out = []
    for template in TWILIO_FIELDS.values():
        for key, value in template.items():
            for bad in FIELD_VALUES:
                out.append(json.dumps({**template, key: bad}))
            if isinstance(value, dict):
                for sub in value:
                    for bad in FIELD_VALUES:
                        out.append(json.dumps({**template, key: {**value, sub: bad}}))
    return out


IN_CALL_SHAPES: dict[str, list[str | bytes]] = {  # sent inside a live call, every round
    "event is an object": [json.dumps({"event": {"x": 1}})] * 30,
    "event is a list": [json.dumps({"event": ["media"]})] * 30,
    "wrong type for a field": list(wrong_types()),
    "invalid base64 payload": [
        json.dumps({"event": "media", "media": {"track": "inbound", "payload": bad}})
        for bad in ("!!not base64!!", "AAA", "=" * 9, "\u00e9\u00e9\u00e9\u00e9", "A" * 161)
    ]
    * 6,
    "unknown event": [json.dumps({"event": name}) for name in ("foo", "START", "", "media ", "x" * 500)] * 6,
    "binary frame": [b"\xff\xfe\x00binary", b"\x00" * 160, bytes(range(256))] * 10,
    "deep JSON within the size limit": [DEEP_WITHIN_LIMIT] * 3,
    "not JSON": ["{", "null", "[]", '"media"', "1e999999", '{"event": "\\ud800"}'] * 5,
}
PRE_START_JUNK: list[str | bytes] = [
    b"\x00" * 100, json.dumps({"event": {"x": 1}}), json.dumps({"event": ["media"]}), DEEP_WITHIN_LIMIT,
    json.dumps({"event": "media", "media": {"payload": SILENCE}}), "not json",
]  # fmt: skip


@dataclass
class Tally:
    """Messages sent per category and how the server answered each connection."""

    sent: Counter[str] = field(default_factory=Counter)
    answers: dict[str, Counter[str]] = field(default_factory=dict)  # category → close code → count
    connections: int = 0

    def answered(self, category: str, answer: str) -> None:
        self.connections += 1
        self.answers.setdefault(category, Counter())[answer] += 1

    def merge(self, other: Tally) -> None:
        self.sent.update(other.sent)
        self.connections += other.connections
        for category, counts in other.answers.items():
            self.answers.setdefault(category, Counter()).update(counts)

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def start_message(plan: CallPlan, *, call_sid: str | None = None, token: str | None = None) -> str:
    """Twilio's ``start`` for `plan` (optionally for another CallSid or with another token)."""
    parameters = dict(plan.custom_parameters)
    if token is not None:
        parameters["token"] = token
    stream_sid = new_sid("MZ")
    start = {
        "streamSid": stream_sid, "accountSid": new_sid("AC"), "callSid": call_sid or plan.call_sid,
        "tracks": ["inbound"], "customParameters": parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }  # fmt: skip
    return json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": stream_sid})


def close_answer(code: int | None) -> str:
    return f"closed {code}" if code is not None else "open (we hung up)"


async def raw_connection(
    url: str, messages: list[str | bytes], tally: Tally, category: str, *, abort_after_reply: bool = False
) -> None:
    """Send `messages` on a fresh socket, then wait (up to 15 s) for the server to close it; with
    `abort_after_reply`, drop the TCP connection as soon as the agent speaks (a caller gone)."""
    try:
        async with connect(url, max_size=None, compression=None, open_timeout=30) as ws:
            for message in messages:
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    break
                tally.sent[category] += 1
            if abort_after_reply:
                try:
                    await asyncio.wait_for(ws.recv(), timeout=15)
                except (TimeoutError, ConnectionClosed):
                    pass
                ws.transport.abort()
                tally.answered(category, "aborted by us")
                return
            try:
                await asyncio.wait_for(ws.wait_closed(), timeout=15)
            except TimeoutError:
                tally.answered(category, "still open after 15 s")
                return
            tally.answered(category, close_answer(ws.close_code))
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        tally.answered(category, f"connect failed ({type(exc).__name__})")


async def in_call(plan: CallPlan, messages: list[tuple[str, str | bytes]], tally: Tally) -> None:
    """A real call (valid token, 20 ms uplink running) carrying `messages` among its media."""
    caller = MediaStreamCaller(
        plan.ws_url, custom_parameters=plan.custom_parameters, call_sid=plan.call_sid,
        from_number=plan.from_number, open_timeout=30,
    )  # fmt: skip
    try:
        await caller.__aenter__()
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        for category in dict.fromkeys(c for c, _ in messages):
            tally.answered(category, f"connect failed ({type(exc).__name__})")
        return
    try:
        for category, message in messages:
            if caller.closed_at is not None:
                break
            try:
                await caller.send_raw(message)
            except ConnectionClosed:
                break
            tally.sent[category] += 1
        await asyncio.sleep(0.5)  # the server's answer to the last of them
    finally:
        await caller.hang_up()
    code = caller.close_code if caller.ended_by == "server_closed" else None
    for category in dict.fromkeys(c for c, _ in messages):
        tally.answered(category, close_answer(code))


async def flood(plan: CallPlan, count: int, tally: Tally) -> None:
    """`count` valid media messages as fast as the socket takes them (the rate limit's job)."""
    media = json.dumps(
        {"event": "media", "streamSid": "MZ", "media": {"track": "inbound", "payload": SILENCE}}
    )
    await in_call(plan, [("flood (valid media, no pacing)", media)] * count, tally)


async def placed(plan_call: PlanCall, index: int, tally: Tally) -> CallPlan | None:
    """A call's plan from its signed webhook; None (counted) when the agent turned the call away."""
    try:
        return await plan_call(index)
    except (RuntimeError, httpx.HTTPError) as exc:  # the overflow TwiML (busy, loop late) or an error
        tally.answered("webhook for a fuzz call", f"no stream ({type(exc).__name__})")
        return None


async def abuse_round(plan_call: PlanCall, first_index: int, tally: Tally, *, flood_count: int) -> None:
    """One round of every bad shape: junk and a flood in two calls at once, then the connections
    the server must refuse or close, then replays of the junk call's token."""
    junk_plan, flood_plan = [await placed(plan_call, first_index + i, tally) for i in range(2)]
    if junk_plan is None:
        return
    url = junk_plan.ws_url
    junk = [(category, m) for category, shapes in IN_CALL_SHAPES.items() for m in shapes]
    random.Random(13).shuffle(junk)  # interleaved, the same order every round

    async def replay_while_live() -> None:
        await asyncio.sleep(1.0)  # the junk call's stream is up
        await raw_connection(url, [start_message(junk_plan)], tally, "replayed token (call live)")

    await asyncio.gather(
        in_call(junk_plan, junk, tally),
        *([flood(flood_plan, flood_count, tally)] if flood_plan else []),
        replay_while_live(),
    )
    await raw_connection(url, [start_message(junk_plan)], tally, "replayed token (call ended)")
    for i, (category, message) in enumerate(
        (("1 MB frame (in a call)", ONE_MEGABYTE), ("200k-deep JSON array (in a call)", DEEP_ARRAY))
    ):
        plan = await placed(plan_call, first_index + 2 + i, tally)
        if plan is not None:
            await in_call(plan, [(category, message)], tally)
    await raw_connection(url, PRE_START_JUNK * 4, tally, "junk before start")
    await raw_connection(url, [ONE_MEGABYTE], tally, "1 MB frame before start")
    await raw_connection(url, [DEEP_ARRAY], tally, "200k-deep JSON array before start")
    # a valid token offered forged, empty, or for another call
    for token, call_sid in (("forged.token", None), ("", None), (None, new_sid("CA"))):
        start = start_message(junk_plan, token=token, call_sid=call_sid)
        await raw_connection(url, [start], tally, "bad token")


async def abuse_until(plan_call: PlanCall, deadline: float, min_messages: int, *, flood_count: int) -> Tally:
    """Rounds of ``abuse_round`` until `deadline` (monotonic) has passed and `min_messages` are sent."""
    tally, index = Tally(), 100_000  # CallSids apart from the live call's
    while time.monotonic() < deadline or tally.total < min_messages:
        await abuse_round(plan_call, index, tally, flood_count=flood_count)
        index += 5
    return tally
