"""One OpenAI Realtime websocket connection's event plumbing, shared by the conversation fake
(`openai_realtime.py`) and the transcription fake (`openai_realtime_stt.py`): JSON events in,
`session.created` first, `event_id` on every server event, OpenAI's `error` event for what the API
refuses, and dispatch of each client event to the session's `on_<type>` handler.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect


def new_id(prefix: str) -> str:
    """An OpenAI-style id (`sess_…`, `item_…`, `event_…`)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class RealtimeEventSession:
    """Base of one connection: subclasses set `session`, `client_events` and `on_<type>` handlers,
    and list the tasks to cancel when the socket closes in `background_tasks()`."""

    client_events: tuple[str, ...] = ()

    def __init__(self, websocket: WebSocket, record: dict[str, Any]) -> None:
        self.ws, self.record = websocket, record
        self.session: dict[str, Any] = {}
        self.send_lock = asyncio.Lock()
        self.closed = False

    def background_tasks(self) -> list[asyncio.Task[None] | None]:
        """Tasks of this connection still running when it closes (cancelled then)."""
        return []

    async def send(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        event = {"event_id": new_id("event"), **event}
        async with self.send_lock:
            try:
                await self.ws.send_text(json.dumps(event))
                self.record["sent"].append(event["type"])
            except (RuntimeError, WebSocketDisconnect):
                self.closed = True

    async def error(
        self,
        message: str,
        *,
        code: str | None = None,
        event_id: str | None = None,
        type_: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        await self.send(
            {
                "type": "error",
                "error": {
                    "type": type_,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": event_id,
                },
            }
        )

    async def run(self) -> None:
        await self.send({"type": "session.created", "session": self.session})
        try:
            while not self.closed:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    await self.error("Binary frames are not supported; send JSON events.")
                    continue
                await self.client_event(text)
        except WebSocketDisconnect:
            return
        finally:
            self.closed = True
            for task in self.background_tasks():
                if task is not None:
                    task.cancel()

    async def client_event(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            await self.error("We could not parse the JSON body of your request.", code="invalid_json")
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self.error("Missing required parameter: 'type'.", code="missing_required_parameter")
            return
        kind, event_id = event["type"], event.get("event_id")
        logged = {k: v for k, v in event.items() if k != "audio"}
        self.record["events"].append(logged)
        if kind not in self.client_events:
            await self.error(
                f"Invalid value: '{kind}'. Supported values are: {', '.join(self.client_events)}.",
                code="invalid_value",
                event_id=event_id,
                param="type",
            )
            return
        handler = getattr(self, "on_" + kind.replace(".", "_"))
        await handler(event)


def merge_session(target: dict[str, Any], update: dict[str, Any]) -> None:
    """Deep-merge a session.update into the session (nested objects are updated, not replaced)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_session(target[key], value)
        else:
            target[key] = value
