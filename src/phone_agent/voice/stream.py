"""The start of a Twilio Media Stream: read messages until ``start`` and say what it told us.

Twilio opens the socket, sends ``connected`` and ``start`` (with our ``<Parameter>``s as
``customParameters``). Malformed messages before ``start`` (binary frames, oversize, not JSON, JSON of
any depth or shape we don't expect) are counted and skipped without a traceback; no ``start`` among
the first ``MAX_MESSAGES_BEFORE_START`` messages refuses the stream. ``decode_message`` is the one
place a Media Stream message becomes a dict, for this and for the call's serializer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect

from phone_agent.voice.stream_limits import StreamLimits

MAX_MESSAGES_BEFORE_START = 20


@dataclass
class StreamStart:
    """What Twilio's ``start`` message told us about the call.

    ``caller`` is the caller's number as the signed stream token carries it (normalised once at
    ``/phone/incoming``); the edge sets it after checking the token. ``parameters`` are the raw
    ``customParameters`` (direction, token, ...).
    """

    stream_sid: str
    call_sid: str
    account_sid: str | None
    parameters: dict[str, str] = field(default_factory=dict)
    caller: str | None = None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def direction(self) -> str:
        """inbound | outbound (from the stream's parameters; inbound when absent)."""
        return self.parameters.get("direction") or "inbound"


class StreamRefused(Exception):
    """The stream cannot become a call (the message says why; it is logged, never sent)."""


def parse_start(message: dict[str, object]) -> StreamStart:
    """A ``start`` message as a ``StreamStart``; StreamRefused when it lacks the SIDs."""
    start = message.get("start")
    if not isinstance(start, dict):
        raise StreamRefused("start message without a start object")
    stream_sid = start.get("streamSid") or message.get("streamSid")
    call_sid = start.get("callSid")
    if not isinstance(stream_sid, str) or not isinstance(call_sid, str):
        raise StreamRefused("start message without streamSid/callSid")
    params = start.get("customParameters")
    params = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
    account = start.get("accountSid")
    return StreamStart(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=account if isinstance(account, str) else None,
        parameters=params,
    )


def decode_message(data: str | bytes, limits: StreamLimits) -> dict[str, object] | None:
    """A Twilio message as a dict with a string ``event``; None (counted in ``limits``) for anything else.

    Twilio sends JSON text only: binary frames, oversize messages, invalid or too deeply nested
    JSON, and JSON that is not an object with a string ``event`` are ignored, never raised.
    """
    if isinstance(data, bytes):
        limits.ignore("binary frame", f"{len(data)} bytes")
        return None
    if not limits.size_ok(data):
        return None
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        limits.ignore("message that is not JSON")
        return None
    if not isinstance(message, dict):
        limits.ignore(f"JSON {type(message).__name__} (expected an object)")
        return None
    if not isinstance(message.get("event"), str):
        limits.ignore("message without a string event")
        return None
    return message


async def read_start(websocket: WebSocket, limits: StreamLimits | None = None) -> StreamStart:
    """Read messages until Twilio's ``start``; anything malformed is counted and skipped."""
    limits = limits or StreamLimits()
    for _ in range(MAX_MESSAGES_BEFORE_START):
        received = await websocket.receive()
        if received["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(received.get("code", 1000))
        raw = received.get("text")
        message = decode_message(raw if raw is not None else received.get("bytes") or b"", limits)
        if message is None:
            continue
        event = message["event"]
        if event == "start":
            return parse_start(message)
        if event != "connected":
            limits.ignore("event before start", repr(str(event)[:40]))
    raise StreamRefused("no start message")
