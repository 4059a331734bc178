"""The start of a Twilio Media Stream: read messages until ``start`` and say what it told us.

Twilio opens the socket, sends ``connected`` and ``start`` (with our ``<Parameter>``s as
``customParameters``). Malformed messages before ``start`` are logged and skipped; no ``start``
among the first ``MAX_MESSAGES_BEFORE_START`` messages refuses the stream.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from fastapi import WebSocket
from loguru import logger

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


async def read_start(websocket: WebSocket) -> StreamStart:
    """Read messages until Twilio's ``start``; malformed ones are logged and skipped."""
    for _ in range(MAX_MESSAGES_BEFORE_START):
        raw = await websocket.receive_text()
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("media stream: ignoring a message that is not JSON before start")
            continue
        if not isinstance(message, dict):
            continue
        event = message.get("event")
        if event == "start":
            return parse_start(message)
        if event != "connected":
            logger.warning("media stream: ignoring {!r} before start", str(event)[:40])
    raise StreamRefused("no start message")
